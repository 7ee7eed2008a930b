package nodestatus

import "testing"

func FuzzParseObjectResp(f *testing.F) {
	f.Add([]byte(`"OK"`))
	f.Add([]byte(`{"Object":{"metadata":{"name":"n"}},"Err":null}`))
	f.Add([]byte(`{"Object":null,"Err":{"ErrStatus":{"reason":"NotFound","code":404}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseObjectResp(b)
	})
}
