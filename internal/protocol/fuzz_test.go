package protocol

import (
	"encoding/json"
	"testing"
)

// fuzzDecoder checks that decode never panics and that whatever it accepts re-encodes into
// something it accepts again.
func fuzzDecoder(f *testing.F, name string) {
	for _, body := range valid[name] {
		f.Add([]byte(body))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"callId":null}`))
	decode := decoders[name]
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decode(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", v, err)
		}
		if _, err := decode(again); err != nil {
			t.Fatalf("accepted %q but refused its re-encoding %q: %v", data, again, err)
		}
	})
}

func FuzzDecodeIncomingCall(f *testing.F)      { fuzzDecoder(f, "IncomingCall") }
func FuzzDecodeWorkflow(f *testing.F)          { fuzzDecoder(f, "Workflow") }
func FuzzDecodeCallback(f *testing.F)          { fuzzDecoder(f, "Callback") }
func FuzzDecodeNotification(f *testing.F)      { fuzzDecoder(f, "Notification") }
func FuzzDecodeSubscribeRequest(f *testing.F)  { fuzzDecoder(f, "SubscribeRequest") }
func FuzzDecodeOperationResponse(f *testing.F) { fuzzDecoder(f, "OperationResponse") }
func FuzzDecodeJoinRequest(f *testing.F)       { fuzzDecoder(f, "JoinRequest") }
func FuzzDecodeJoinResponse(f *testing.F)      { fuzzDecoder(f, "JoinResponse") }
func FuzzDecodeInviteRequest(f *testing.F)     { fuzzDecoder(f, "InviteRequest") }
func FuzzDecodeErrorBody(f *testing.F)         { fuzzDecoder(f, "ErrorBody") }
