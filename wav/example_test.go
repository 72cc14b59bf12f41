package wav_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/latentlm/latentlm/wav"
)

// Encode writes 16-bit PCM (1 becomes 32767, the largest sample); Decode
// reads it back as float32 samples in [-1, 1), and says how many channels
// the file held. A truncated file is refused with what is wrong.
func ExampleDecode() {
	var buf bytes.Buffer
	if err := wav.Encode(&buf, wav.Audio{Rate: 16000, Samples: []float32{0, 0.5, -0.25, 1}}); err != nil {
		log.Fatal(err)
	}
	a, err := wav.Decode(buf.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(buf.Len(), "bytes:", a.Rate, "Hz,", a.Channels, "channel,", a.Samples)
	_, err = wav.Decode(buf.Bytes()[:30])
	fmt.Println(err)
	// Output:
	// 52 bytes: 16000 Hz, 1 channel, [0 0.5 -0.25 0.9999695]
	// truncated: the RIFF header declares 52 bytes, the file holds 30
}
