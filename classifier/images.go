package classifier

import (
	"strconv"
	"strings"

	"github.com/latentlm/latentlm/imageio"
)

// ReadImages reads every PNG of dir (sorted by name) as a size×size
// grayscale image in [0, 1]. Any other file, or an image of another size, is
// an error that names the file.
//
// Labels follow the file names: a file named <class>_<anything>.png (class a
// decimal number 0…classes−1, e.g. 3_0007.png) is of that class. labels is
// returned only when every file is named so; otherwise it is nil and the
// images count as unlabelled.
func ReadImages(dir string, size, classes int) (images [][]float32, labels []int, names []string, err error) {
	images, names, err = imageio.ReadDir(dir, size, size)
	if err != nil {
		return nil, nil, nil, err
	}
	labels = make([]int, len(names))
	for i, n := range names {
		c, ok := LabelFromName(n, classes)
		if !ok {
			return images, nil, names, nil
		}
		labels[i] = c
	}
	return images, labels, names, nil
}

// LabelFromName parses the class of a file named <class>_<anything>.png.
func LabelFromName(name string, classes int) (int, bool) {
	prefix, _, found := strings.Cut(name, "_")
	if !found || prefix == "" {
		return 0, false
	}
	for _, r := range prefix {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	c, err := strconv.Atoi(prefix)
	if err != nil || c >= classes {
		return 0, false
	}
	return c, true
}
