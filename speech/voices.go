package speech

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/latentlm/latentlm/wav"
)

// Voice is one synthesiser voice of the data: a distinct timbre and
// prosody, the unit the speaker classifier tells apart.
type Voice struct {
	Name    string `json:"name"`    // e.g. "flite-awb"
	Synth   string `json:"synth"`   // "flite" or "festival"
	ID      string `json:"id"`      // flite's -voice name, or festival's voice_… function
	Speaker string `json:"speaker"` // the person recorded, shared by voices of one speaker
	Rate    int    `json:"rate"`    // the rate the synthesiser renders at, before resampling
	Package string `json:"package"` // the Debian package that installs it
	// QuestionsAsStatements reads '?' and '!' as full stops: festival's
	// Italian front end stops with a Scheme error ("wrong type of argument
	// to get_c_val") on an English question.
	QuestionsAsStatements bool `json:"questions_as_statements,omitempty"`
}

// Voices are the seven voices of Debian's flite and festival that setup
// installs. Flite's 8 kHz "kal" is left out: kal16 is the same voice at
// 16 kHz, and an upsampled 8 kHz voice would be told apart by its empty top
// band rather than its timbre. Two speakers appear twice, in different
// synthesisers (kal: flite diphone and festival diphone; slt: flite's
// clustergen and festival's HTS), which sound distinct but share a
// speaker, so the held-out voice is one with a speaker of its own.
var Voices = []Voice{
	{Name: "flite-awb", Synth: "flite", ID: "awb", Speaker: "awb", Rate: 16000, Package: "flite"},
	{Name: "flite-kal16", Synth: "flite", ID: "kal16", Speaker: "kal", Rate: 16000, Package: "flite"},
	{Name: "flite-rms", Synth: "flite", ID: "rms", Speaker: "rms", Rate: 16000, Package: "flite"},
	{Name: "flite-slt", Synth: "flite", ID: "slt", Speaker: "slt", Rate: 16000, Package: "flite"},
	{Name: "festival-kal", Synth: "festival", ID: "kal_diphone", Speaker: "kal", Rate: 16000, Package: "festvox-kallpc16k"},
	{Name: "festival-ked", Synth: "festival", ID: "ked_diphone", Speaker: "ked", Rate: 16000, Package: "festvox-kdlpc16k"},
	{Name: "festival-slt-hts", Synth: "festival", ID: "cmu_us_slt_arctic_hts", Speaker: "slt", Rate: 32000, Package: "festvox-us-slt-hts"},
}

// Timbres are voices of other languages that Debian's festival can speak
// and setup installs: two Italian, four Czech, one Catalan and two Finnish
// speakers. They exist to teach the speech tokenizer more timbres than the
// six English training voices give it, so that its decoder learns to write
// a voice it has not heard (the held-out one) rather than one of six. They
// read the English training texts by their own language's letter-to-sound
// rules, so their words are not English: nothing judges them, and a
// text-to-speech model trains on them only when asked, as more speakers
// to take a voice from a prompt (`latentlm speech data --timbres`,
// `speech-vae train --timbres`, `train --task tts --timbres`). The Czech
// HTS and diphone voices render at 32 or 44.1 kHz and the Finnish at
// 22.05 kHz, resampled to 16 kHz.
var Timbres = []Voice{
	{Name: "festival-it-lp", Synth: "festival", ID: "lp_diphone", Speaker: "it-lp", Rate: 16000, Package: "festvox-italp16k", QuestionsAsStatements: true},
	{Name: "festival-it-pc", Synth: "festival", ID: "pc_diphone", Speaker: "it-pc", Rate: 16000, Package: "festvox-itapc16k", QuestionsAsStatements: true},
	{Name: "festival-cs-dita", Synth: "festival", ID: "czech_dita", Speaker: "cs-dita", Rate: 32000, Package: "festvox-czech-dita"},
	{Name: "festival-cs-krb", Synth: "festival", ID: "czech_krb", Speaker: "cs-krb", Rate: 32000, Package: "festvox-czech-krb"},
	{Name: "festival-cs-machac", Synth: "festival", ID: "czech_machac", Speaker: "cs-machac", Rate: 32000, Package: "festvox-czech-machac"},
	{Name: "festival-cs-ph", Synth: "festival", ID: "czech_ph", Speaker: "cs-ph", Rate: 44100, Package: "festvox-czech-ph"},
	{Name: "festival-ca-ona-hts", Synth: "festival", ID: "upc_ca_ona_hts", Speaker: "ca-ona", Rate: 16000, Package: "festvox-ca-ona-hts"},
	{Name: "festival-fi-lj", Synth: "festival", ID: "suo_fi_lj_diphone", Speaker: "fi-lj", Rate: 22050, Package: "festvox-suopuhe-lj"},
	{Name: "festival-fi-mv", Synth: "festival", ID: "hy_fi_mv_diphone", Speaker: "fi-mv", Rate: 22050, Package: "festvox-suopuhe-mv"},
}

// DefaultHeldout is the voice held out of training for the voice-cloning
// test: a speaker no other voice shares.
const DefaultHeldout = "flite-rms"

// VoiceByName finds a voice of Voices.
func VoiceByName(name string) (Voice, error) {
	return voiceIn(Voices, name)
}

// voiceIn finds a voice by name in voices.
func voiceIn(voices []Voice, name string) (Voice, error) {
	var names []string
	for _, v := range voices {
		if v.Name == name {
			return v, nil
		}
		names = append(names, v.Name)
	}
	return Voice{}, fmt.Errorf("speech: no voice %q: want one of %s", name, strings.Join(names, ", "))
}

// synthPrograms are the programs each synthesiser needs.
var synthPrograms = map[string]string{"flite": "flite", "festival": "festival"}

// CheckVoice says whether v can be rendered here, and if not, how to
// install it.
func CheckVoice(v Voice) error {
	if _, err := exec.LookPath(synthPrograms[v.Synth]); err != nil {
		return fmt.Errorf("speech: voice %s: no %s program: run make setup, which installs Debian's %s", v.Name, v.Synth, v.Package)
	}
	if v.Synth == "festival" {
		// Debian's festvox packages put each voice in a folder named after
		// it under /usr/share/festival/voices/<language>/.
		m, _ := filepath.Glob("/usr/share/festival/voices/*/" + v.ID)
		if len(m) == 0 {
			return fmt.Errorf("speech: voice %s: festival has no voice %s: run make setup, which installs Debian's %s", v.Name, v.ID, v.Package)
		}
	}
	return nil
}

// Synthesize renders texts in voice v into dir: text i into paths[i], as
// 16-bit mono WAV at Rate (16 kHz), resampled with Resample where the voice
// renders at another rate. Flite runs once per text (it starts in a few
// milliseconds); festival once for all of them, since it takes a second
// to start, with a Scheme script that synthesises each text in turn. It
// returns the duration of each rendering in seconds.
func Synthesize(ctx context.Context, v Voice, texts, paths []string) ([]float64, error) {
	if len(texts) != len(paths) {
		return nil, fmt.Errorf("speech: %d texts for %d paths", len(texts), len(paths))
	}
	if len(texts) == 0 {
		return nil, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(paths[0]), ".synth-*")
	if err != nil {
		return nil, fmt.Errorf("speech: %w", err)
	}
	defer os.RemoveAll(tmp)
	raw := make([]string, len(texts))
	for i := range raw {
		raw[i] = filepath.Join(tmp, fmt.Sprintf("%d.wav", i))
	}
	switch v.Synth {
	case "flite":
		for i, t := range texts {
			// -t takes the text as one argument: no shell, no quoting.
			cmd := exec.CommandContext(ctx, "flite", "-voice", v.ID, "-o", raw[i], "-t", t)
			if out, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("speech: flite -voice %s %q: %v: %s", v.ID, t, err, strings.TrimSpace(string(out)))
			}
		}
	case "festival":
		var script strings.Builder
		fmt.Fprintf(&script, "(voice_%s)\n", v.ID)
		for i, t := range texts {
			if v.QuestionsAsStatements {
				t = strings.NewReplacer("?", ".", "!", ".").Replace(t)
			}
			fmt.Fprintf(&script, "(utt.save.wave (utt.synth (Utterance Text %s)) %s 'riff)\n", schemeString(t), schemeString(raw[i]))
		}
		sp := filepath.Join(tmp, "script.scm")
		if err := os.WriteFile(sp, []byte(script.String()), 0o644); err != nil {
			return nil, fmt.Errorf("speech: %w", err)
		}
		cmd := exec.CommandContext(ctx, "festival", "-b", sp)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("speech: festival voice %s: %v: %s", v.ID, err, lastOutput(out))
		}
	default:
		return nil, fmt.Errorf("speech: voice %s: unknown synthesiser %q", v.Name, v.Synth)
	}
	seconds := make([]float64, len(texts))
	for i := range texts {
		a, err := wav.Read(raw[i])
		if err != nil {
			return nil, fmt.Errorf("speech: voice %s did not render %q: %w", v.Name, texts[i], err)
		}
		if len(a.Samples) == 0 {
			return nil, fmt.Errorf("speech: voice %s rendered %q as an empty file", v.Name, texts[i])
		}
		if a, err = To16k(a); err != nil {
			return nil, err
		}
		a.Channels = 1
		if err := wav.Write(paths[i], a); err != nil {
			return nil, err
		}
		seconds[i] = a.Seconds()
	}
	return seconds, nil
}

// schemeString quotes s as a Scheme string literal.
func schemeString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func lastOutput(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, "; ")
}
