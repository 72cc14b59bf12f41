// Package speaker is the judge of voices for text-to-speech (issue 17): a
// small speaker classifier, trained by the project on the log-mel
// features of the speech data (package speech), that names which of the
// seven synthesised voices speaks a clip and gives each clip an
// embedding. The issue asks for two figures from it: its accuracy on real
// test audio, reported first and required to be at least 98% (else the
// judge, not the generator, would be measured), and the speaker
// similarity of the LatentLM paper (SIM), the cosine between the
// embeddings of generated speech and of real speech of the target voice
// (Similarity, Centroid). Evaluate also gives SIM for real speech — each
// test clip against the centroid of the other real clips of its voice —
// since a generated clip's SIM means something only next to that.
//
// Front end (features.go). speech.LogMel with speech.DefaultSTFT and
// speech.DefaultMel: 80 log-mel bands, 100 frames a second. Each clip is
// made relative to its own level, its silences are clipped and masked,
// and each band is normalised by the mean and standard deviation of the
// training speech, stored with the weights. Removing the level and the
// silences keeps the judge on the voice: the synthesisers differ in gain
// and in how their pauses sound (festival's are digital zeros), neither of
// which generated speech need reproduce.
//
// Network (config.go). Windows of 150 frames (1.5 s):
//
//	x [B, 150, 80] → per width: conv over 5 frames + bias, ReLU
//	→ mean and standard deviation over the speech frames   [B, 2·96]
//	→ linear + bias, RMS normalised                        ← the embedding [B, 128]
//	→ linear + bias                                        ← the voice logits
//
// The convolutions are nn.Conv2D over a 150×1 "image" with a 5×1 kernel:
// stride 1 and same padding, which every backend can differentiate
// (docs/DESIGN.md §10). Pooling with a mask lets one compiled shape take
// windows of any length up to 150 frames. Predict cuts a clip into full
// windows (one padded window if it is shorter) and averages their logits
// and embeddings, weighted by their speech frames; it compiles one graph
// of PredictBatch windows.
//
// Training (train.go) uses train.Trainer (AdamW, cosine schedule, EMA)
// on random crops, one voice drawn uniformly per crop. It learns each
// voice from its train split, except a voice held out of the speech
// data's training split (flite-rms), which has no training audio at all
// by design (it is the voice-cloning test of the text-to-speech model):
// the judge learns it from its valid split, the only other real audio of
// it, so that it can still recognise and embed it, while every voice's
// test split stays unseen and the reported accuracy honest.
package speaker
