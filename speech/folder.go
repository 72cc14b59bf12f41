package speech

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/latentlm/latentlm/internal/atomicfile"
	"github.com/latentlm/latentlm/internal/boundedio"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/wav"
)

// TranscriptFile is the transcript of a folder of speech: a user's own
// recordings, a model's reconstructions or generations, or one voice of
// the data cache (wav/<voice>/transcript.tsv).
//
// The format is UTF-8 text, one clip per line:
//
//	name.wav<TAB>what is said
//
// where name.wav is a file in the same folder (no folders in the name)
// and the text is what the recogniser should hear; blank lines and lines
// starting with '#' are skipped. A tab-separated line is the simplest
// format a spreadsheet, a shell loop or a program writes without quoting
// rules, since transcripts hold commas and quotes but never tabs.
const TranscriptFile = "transcript.tsv"

// maxTranscript bounds a transcript file: a million clips of a sentence.
const maxTranscript = 256 << 20

// Clip is one line of a transcript: Path is the WAV file, Name its name
// in the folder.
type Clip struct {
	Name, Path, Text string
}

// ReadFolder reads dir/transcript.tsv and checks that every clip it names
// is a regular WAV file (by name and type; wav.Read checks the content
// when the clip is used, so a large folder is not read whole here). WAV
// files that the transcript does not name are ignored. Errors name the
// file and line.
func ReadFolder(dir string) ([]Clip, error) {
	path := filepath.Join(dir, TranscriptFile)
	b, err := boundedio.ReadFile(path, maxTranscript)
	if err != nil {
		return nil, fmt.Errorf("speech: reading %s: %w (a folder of speech needs a %s of name.wav<TAB>text lines)", path, err, TranscriptFile)
	}
	s := string(b)
	if err := text.CheckUTF8(s); err != nil {
		return nil, fmt.Errorf("speech: reading %s: %w", path, err)
	}
	var clips []Clip
	seen := map[string]int{}
	n := 0
	for line := range strings.Lines(s) {
		n++
		line = strings.TrimRight(line, "\r\n")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, said, ok := strings.Cut(line, "\t")
		if !ok {
			return nil, fmt.Errorf("speech: %s line %d: no tab between the file name and the text", path, n)
		}
		if strings.Contains(said, "\t") {
			return nil, fmt.Errorf("speech: %s line %d: more than one tab", path, n)
		}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
			return nil, fmt.Errorf("speech: %s line %d: %q is not a file name in the folder", path, n, name)
		}
		if !strings.EqualFold(filepath.Ext(name), ".wav") {
			return nil, fmt.Errorf("speech: %s line %d: %q does not end in .wav", path, n, name)
		}
		if Normalize(said) == "" {
			return nil, fmt.Errorf("speech: %s line %d: no words in the text of %s", path, n, name)
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("speech: %s line %d: %s is already on line %d", path, n, name, prev)
		}
		seen[name] = n
		p := filepath.Join(dir, name)
		if _, err := boundedio.Stat(p, wav.MaxFileSize); err != nil {
			return nil, fmt.Errorf("speech: %s line %d: %s: %w", path, n, p, err)
		}
		clips = append(clips, Clip{Name: name, Path: p, Text: strings.TrimSpace(said)})
	}
	if len(clips) == 0 {
		return nil, fmt.Errorf("speech: %s names no clips", path)
	}
	return clips, nil
}

// WriteTranscript writes clips' names and texts as dir/transcript.tsv.
func WriteTranscript(dir string, clips []Clip) error {
	var b strings.Builder
	for _, c := range clips {
		if strings.ContainsAny(c.Name, "\t\n/") || strings.ContainsAny(c.Text, "\t\n") {
			return fmt.Errorf("speech: writing %s: clip %q has a tab, newline or slash", TranscriptFile, c.Name)
		}
		fmt.Fprintf(&b, "%s\t%s\n", c.Name, c.Text)
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, TranscriptFile), []byte(b.String())); err != nil {
		return fmt.Errorf("speech: %w", err)
	}
	return nil
}
