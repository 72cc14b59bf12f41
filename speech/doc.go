// Package speech holds the groundwork of text-to-speech: the data, and
// judges that no model of this project trained.
//
// Data. Two text sets — spoken numbers drawn from a seed (NumberTexts) and
// plain 3–12 word sentences of the fortunes corpus (Sentences) — are
// rendered by Build in seven voices of Debian's flite and festival
// (Voices), at 16 kHz mono, into a cache folder (.deps/speech, built by
// `latentlm speech data`) with a manifest of the seed, the package
// versions and the hours per split. The split is by text, so test texts
// are never heard in training, and one voice (DefaultHeldout) is held out
// of training entirely for a voice-cloning test. A user's own folder of
// WAV files with a transcript.tsv reads the same way (ReadFolder).
//
// Judges. Judge wraps pocketsphinx, which transcribes with a JSGF grammar
// for the numbers (NumbersGrammar) and its default language model for
// sentences; WordErrors scores the transcripts. Its rate on generated
// speech means something only next to its rate on the original audio.
//
// Signal processing, in plain Go and checked against analytic cases: a
// windowed-sinc resampler (Resample), the STFT (PowerSpectrogram), the
// mel filterbank and log-mel features (LogMel), and spectrogram pictures
// (WriteSpectrogram). WAV input and output is package wav.
package speech
