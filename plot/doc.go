// Package plot draws the project's line plots (training loss, evaluation
// sweeps, sampling throughput) as 800×500 PNG files: a title, axis and tick
// labels, a grid, optional logarithmic X and Y axes, one tab10 colour per
// series and a legend. It is a small hand-written rasteriser over the
// standard image packages and golang.org/x/image's fixed 7×13 bitmap font,
// meant for quick looks at curves, not for publication.
//
// Inputs from real runs are handled rather than refused: NaN and ±Inf
// points, and non-positive values on a log axis, are skipped and break the
// line there, so a diverged run still plots what it has; a point with no
// plottable neighbour is drawn as a dot so that it stays visible; and the
// legend goes to the corner of the plot area where it hides the fewest data
// pixels.
//
// # Why not gonum.org/v1/plot
//
// gonum.org/v1/plot (v0.17.0) was weighed against keeping this code and
// not chosen, for four reasons.
//
//   - Features. It has log scales and legends, but a plotter.Line refuses
//     NaN and ±Inf points outright and a log scale panics on values ≤ 0, so
//     callers would need this package's gap splitting anyway; a lone point
//     needs a separate scatter plotter; and the legend is placed where the
//     caller says, not in the least-covered corner.
//   - Weight. This package needs three packages of golang.org/x/image,
//     which the module already requires. gonum/plot would add to the build
//     seven modules besides itself that no package here builds with now
//     (golang.org/x/text, github.com/golang/freetype, git.sr.ht/~sbinet/gg,
//     codeberg.org/go-latex/latex, codeberg.org/go-pdf/fpdf,
//     github.com/ajstarks/svgo and the embedded Liberation TrueType fonts of
//     codeberg.org/go-fonts/liberation) and four more to go.sum for its
//     tests: 62 non-standard packages instead of 3, and a program that
//     writes one plot grows from 3.4 MB to 11.7 MB.
//   - Determinism. The plots under docs/results are regenerated from saved
//     JSON (latentlm sweep --from), and tests check exact colours at known
//     pixels, so the same series must give the same image everywhere. Here
//     every pixel comes from rounded coordinates, a bitmap font and no
//     anti-aliasing, and no product is left for the compiler to fuse into a
//     multiply-add, so the pixels depend only on this code and Go's math
//     package (and the bytes also on Go's PNG encoder); plot_test.go pins
//     them with hashes. gonum/plot anti-aliases vector paths and TrueType
//     glyphs, so its pixels move with its rasteriser, its font files and
//     their hinting (its own tests keep per-architecture golden images and
//     compare some with a tolerance), and a dependency upgrade would change
//     our committed plots.
//   - Maintenance. About 400 lines with no API to track, against a
//     dependency whose API and transitive modules move on their own
//     schedule; what gonum/plot offers beyond this (other plot kinds, SVG,
//     PDF and EPS output, TeX labels) is nothing these plots use.
//
// Every write goes through internal/atomicfile, so a failed or interrupted
// write never leaves a truncated PNG, and arguments are validated before
// anything touches the file system, so an invalid call never creates or
// replaces its target.
package plot
