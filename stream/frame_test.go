package stream

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var frameTests = []struct {
	name string
	wire []byte
	want Frame
}{
	{"spec example", []byte{0xac, 0x02, 0x03, 'h', 'i'}, Frame{ID: 300, Type: TypeData, Data: []byte("hi")}},
	{"remove no data", []byte{0x01, 0x04}, Frame{ID: 1, Type: TypeRemove, Data: []byte{}}},
	{"logs connect", append([]byte{0x07, 0x00}, `{"MessID":7}`...), Frame{ID: 7, Type: TypeLogs, Data: []byte(`{"MessID":7}`)}},
	{"unknown type", []byte{0x02, 0x63}, Frame{ID: 2, Type: 99, Data: []byte{}}},
}

func TestFrameRoundTrip(t *testing.T) {
	for _, tt := range frameTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.wire)
			if err != nil {
				t.Fatalf("Decode(%x) error %v", tt.wire, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decode(%x) mismatch (-want +got):\n%s", tt.wire, diff)
			}
			if b := got.Append(nil); !bytes.Equal(b, tt.wire) {
				t.Errorf("Append() = %x, want %x", b, tt.wire)
			}
		})
	}
}

func TestDecodeShortAndLong(t *testing.T) {
	for _, b := range [][]byte{nil, {0x80}, {0x01}, {0x01, 0x80}} {
		if _, err := Decode(b); err == nil {
			t.Errorf("Decode(%x) = nil error, want ErrShortFrame", b)
		}
	}
	big := Frame{ID: 1, Type: TypeData, Data: make([]byte, MaxData+10)}.Append(nil)
	f, err := Decode(big)
	if err != nil || len(f.Data) != MaxData {
		t.Errorf("Decode(%d bytes) = %d data bytes, %v; want %d", len(big), len(f.Data), err, MaxData)
	}
}

func FuzzDecode(f *testing.F) {
	for _, tt := range frameTests {
		f.Add(tt.wire)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Decode(b)
		if err != nil {
			return
		}
		if len(fr.Data) > MaxData {
			t.Fatalf("Decode: %d data bytes > MaxData", len(fr.Data))
		}
		again, err := Decode(fr.Append(nil))
		if err != nil || again.ID != fr.ID || again.Type != fr.Type || !bytes.Equal(again.Data, fr.Data) {
			t.Fatalf("Decode(Append(%+v)) = %+v, %v", fr, again, err)
		}
	})
}
