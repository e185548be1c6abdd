package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

const sdpOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"

// decoders maps each message name (as docs/protocol.md marks its examples) to its decoder.
var decoders = map[string]func([]byte) (any, error){
	"IncomingCall":      func(b []byte) (any, error) { return DecodeIncomingCall(b) },
	"Workflow":          func(b []byte) (any, error) { return DecodeWorkflow(b) },
	"Callback":          func(b []byte) (any, error) { return DecodeCallback(b) },
	"Notification":      func(b []byte) (any, error) { return DecodeNotification(b) },
	"SubscribeRequest":  func(b []byte) (any, error) { return DecodeSubscribeRequest(b) },
	"OperationResponse": func(b []byte) (any, error) { return DecodeOperationResponse(b) },
	"JoinRequest":       func(b []byte) (any, error) { return DecodeJoinRequest(b) },
	"JoinResponse":      func(b []byte) (any, error) { return DecodeJoinResponse(b) },
	"InviteRequest":     func(b []byte) (any, error) { return DecodeInviteRequest(b) },
	"ErrorBody":         func(b []byte) (any, error) { return DecodeErrorBody(b) },
}

// valid holds one valid body per message (several for the unions).
var valid = map[string][]string{
	"IncomingCall": {
		`{"callId":"c-1","correlationId":"corr-1","from":{"identity":"alice","displayName":"Alice"},"to":{"appId":"echo-bot"},"conference":{"id":"standup","name":"Stand-up"},"modalities":["audio","video"],"mediaOffer":{"sdp":` + jsonString(sdpOffer) + `}}`,
		`{"callId":"c-2","correlationId":"corr-2","from":{"identity":"bob"},"to":{"appId":"echo-bot"},"conference":null,"modalities":["audio"],"mediaOffer":null,"operationId":"op-9"}`,
	},
	"Workflow": {
		`{"actions":[{"action":"answer","operationId":"op-1","mediaAnswer":{"sdp":` + jsonString(sdpOffer) + `}}],"notificationSubscriptions":["callStateChange","rosterUpdate"],"callbackUri":"https://bot-3.example.com/api/calling"}`,
		`{"actions":[{"action":"answer","operationId":"op-1","mediaAnswer":null}],"callbackUri":"http://127.0.0.1:8080"}`,
		`{"actions":[{"action":"reject","reason":"busy"}]}`,
		`{"actions":[{"action":"hangup"}]}`,
	},
	"Callback": {
		`{"callId":"c-1","operationId":"op-1","type":"answer","outcome":"success"}`,
		`{"callId":"c-1","operationId":"op-2","type":"subscribe","outcome":"failure","failureReason":"unknown source 7"}`,
	},
	"Notification": {
		`{"callId":"c-1","sequence":1,"type":"callStateChange","state":"established"}`,
		`{"callId":"c-1","sequence":9,"type":"callStateChange","state":"terminated","reason":"hung up"}`,
		`{"callId":"c-1","sequence":2,"type":"rosterUpdate","participants":[{"id":"p-1","identity":"alice","displayName":"Alice","isBot":false,"streams":[{"kind":"audio","direction":"sendrecv","sourceId":11},{"kind":"video","direction":"sendonly","sourceId":12}]}]}`,
		`{"callId":"c-1","sequence":3,"type":"rosterUpdate","participants":[]}`,
		`{"callId":"c-1","sequence":4,"type":"dominantSpeakerChanged","sourceId":11}`,
		`{"callId":"c-1","sequence":5,"type":"dominantSpeakerChanged","sourceId":0}`,
	},
	"SubscribeRequest":  {`{"socketId":0,"sourceId":12,"width":640,"height":360}`},
	"OperationResponse": {`{"operationId":"op-3"}`},
	"JoinRequest":       {`{}`, `{"callbackUri":"https://bot.example.com/calling"}`, ``},
	"JoinResponse":      {`{"callId":"c-7","operationId":"op-4"}`},
	"InviteRequest":     {`{"appId":"recorder"}`},
	"ErrorBody":         {`{"error":{"code":"notFound","message":"no call c-9"}}`},
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestDecodeValidRoundTrip(t *testing.T) {
	for name, bodies := range valid {
		for i, body := range bodies {
			t.Run(fmt.Sprintf("%s/%d", name, i), func(t *testing.T) {
				v, err := decoders[name]([]byte(body))
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				again, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				v2, err := decoders[name](again)
				if err != nil {
					t.Fatalf("decode re-encoded %s: %v", again, err)
				}
				if !reflect.DeepEqual(v, v2) {
					t.Fatalf("round trip changed %+v into %+v", v, v2)
				}
			})
		}
	}
}

func TestDecodeRefusesHostile(t *testing.T) {
	bigSDP := "v=0\r\n" + strings.Repeat("a", MaxSDPBytes)
	var many []string
	for i := range MaxParticipants + 1 {
		many = append(many, fmt.Sprintf(`{"id":"p%d","identity":"u","isBot":false,"streams":[]}`, i))
	}
	cases := []struct {
		msg, body string
		want      error
	}{
		{"IncomingCall", ``, ErrMalformed},
		{"IncomingCall", `null`, ErrMalformed},
		{"IncomingCall", `[]`, ErrMalformed},
		{"IncomingCall", `{"callId":"c-1"`, ErrMalformed},
		{"IncomingCall", `{"callId":"c-1","correlationId":"x","from":{"identity":"a"},"to":{"appId":"b"},"modalities":["audio"],"extra":1}`, ErrMalformed},
		{"IncomingCall", `{"callId":"c-1","correlationId":"x","from":{"identity":"a"},"to":{"appId":"b"},"modalities":["audio"]} {}`, ErrMalformed},
		{"IncomingCall", `{"callId":1,"correlationId":"x","from":{"identity":"a"},"to":{"appId":"b"},"modalities":["audio"]}`, ErrMalformed},
		{"IncomingCall", `{"correlationId":"x","from":{"identity":"a"},"to":{"appId":"b"},"modalities":["audio"]}`, ErrInvalid},
		{"IncomingCall", `{"callId":"../etc","correlationId":"x","from":{"identity":"a"},"to":{"appId":"b"},"modalities":["audio"]}`, ErrInvalid},
		{"IncomingCall", `{"callId":"c","correlationId":"x","from":{"identity":""},"to":{"appId":"b"},"modalities":["audio"]}`, ErrInvalid},
		{"IncomingCall", `{"callId":"c","correlationId":"x","from":{"identity":"a\u0000"},"to":{"appId":"b"},"modalities":["audio"]}`, ErrInvalid},
		{"IncomingCall", `{"callId":"c","correlationId":"x","from":{"identity":"a"},"to":{"appId":"b"},"modalities":[]}`, ErrInvalid},
		{"IncomingCall", `{"callId":"c","correlationId":"x","from":{"identity":"a"},"to":{"appId":"b"},"modalities":["smell"]}`, ErrInvalid},
		{"IncomingCall", `{"callId":"c","correlationId":"x","from":{"identity":"a"},"to":{"appId":"b"},"modalities":["audio","audio"]}`, ErrInvalid},
		{"IncomingCall", `{"callId":"c","correlationId":"x","from":{"identity":"a"},"to":{"appId":"b"},"modalities":["audio"],"mediaOffer":{"sdp":"hello"}}`, ErrInvalid},
		{"IncomingCall", `{"callId":"c","correlationId":"x","from":{"identity":"a"},"to":{"appId":"b"},"modalities":["audio"],"mediaOffer":{"sdp":` + jsonString(bigSDP) + `}}`, ErrInvalid},
		{"IncomingCall", `{"callId":"` + strings.Repeat("c", MaxIDBytes+1) + `","correlationId":"x","from":{"identity":"a"},"to":{"appId":"b"},"modalities":["audio"]}`, ErrInvalid},
		{"IncomingCall", `{"pad":"` + strings.Repeat(" ", MaxBodyBytes) + `"}`, ErrTooLarge},
		{"Workflow", `{"actions":[]}`, ErrInvalid},
		{"Workflow", `{"actions":[{"action":"dance"}]}`, ErrInvalid},
		{"Workflow", `{"actions":[{"action":"answer"}],"callbackUri":"https://b.example"}`, ErrInvalid},
		{"Workflow", `{"actions":[{"action":"answer","operationId":"o"}]}`, ErrInvalid},
		{"Workflow", `{"actions":[{"action":"answer","operationId":"o"}],"callbackUri":"ftp://b.example"}`, ErrInvalid},
		{"Workflow", `{"actions":[{"action":"answer","operationId":"o"}],"callbackUri":"https://b.example/?q=1"}`, ErrInvalid},
		{"Workflow", `{"actions":[{"action":"answer","operationId":"o"},{"action":"reject"}],"callbackUri":"https://b.example"}`, ErrInvalid},
		{"Workflow", `{"actions":[{"action":"reject","operationId":"o"}]}`, ErrInvalid},
		{"Workflow", `{"actions":[{"action":"hangup","reason":"x"}]}`, ErrInvalid},
		{"Workflow", `{"actions":[{"action":"hangup"}],"notificationSubscriptions":["gossip"]}`, ErrInvalid},
		{"Workflow", `{"actions":[{"action":"hangup"},{"action":"hangup"},{"action":"hangup"},{"action":"hangup"},{"action":"hangup"}]}`, ErrInvalid},
		{"Callback", `{"callId":"c","operationId":"o","type":"answer"}`, ErrInvalid},
		{"Callback", `{"callId":"c","operationId":"o","type":"teleport","outcome":"success"}`, ErrInvalid},
		{"Callback", `{"callId":"c","operationId":"o","type":"answer","outcome":"maybe"}`, ErrInvalid},
		{"Callback", `{"callId":"c","operationId":"o","type":"answer","outcome":"success","failureReason":"x"}`, ErrInvalid},
		{"Notification", `{"callId":"c","sequence":0,"type":"callStateChange","state":"established"}`, ErrInvalid},
		{"Notification", `{"callId":"c","sequence":-1,"type":"callStateChange","state":"established"}`, ErrMalformed},
		{"Notification", `{"callId":"c","sequence":1,"type":"callStateChange"}`, ErrInvalid},
		{"Notification", `{"callId":"c","sequence":1,"type":"callStateChange","state":"dreaming"}`, ErrInvalid},
		{"Notification", `{"callId":"c","sequence":1,"type":"callStateChange","state":"established","sourceId":3}`, ErrInvalid},
		{"Notification", `{"callId":"c","sequence":1,"type":"rosterUpdate"}`, ErrInvalid},
		{"Notification", `{"callId":"c","sequence":1,"type":"rosterUpdate","participants":[` + strings.Join(many, ",") + `]}`, ErrInvalid},
		{"Notification", `{"callId":"c","sequence":1,"type":"rosterUpdate","participants":[{"id":"p","identity":"u","isBot":false,"streams":[{"kind":"audio","direction":"sendrecv","sourceId":0}]}]}`, ErrInvalid},
		{"Notification", `{"callId":"c","sequence":1,"type":"rosterUpdate","participants":[{"id":"p","identity":"u","isBot":false,"streams":[{"kind":"audio","direction":"up","sourceId":1}]}]}`, ErrInvalid},
		{"Notification", `{"callId":"c","sequence":1,"type":"rosterUpdate","participants":[{"id":"p","identity":"u","isBot":false,"streams":[]},{"id":"p","identity":"v","isBot":false,"streams":[]}]}`, ErrInvalid},
		{"Notification", `{"callId":"c","sequence":1,"type":"dominantSpeakerChanged"}`, ErrInvalid},
		{"Notification", `{"callId":"c","sequence":1,"type":"dominantSpeakerChanged","sourceId":4294967296}`, ErrMalformed},
		{"Notification", `{"callId":"c","sequence":1,"type":"weather"}`, ErrInvalid},
		{"SubscribeRequest", `{"sourceId":12,"width":640,"height":360}`, ErrInvalid},
		{"SubscribeRequest", `{"socketId":-1,"sourceId":12,"width":640,"height":360}`, ErrInvalid},
		{"SubscribeRequest", `{"socketId":0,"sourceId":0,"width":640,"height":360}`, ErrInvalid},
		{"SubscribeRequest", `{"socketId":0,"sourceId":1,"width":0,"height":360}`, ErrInvalid},
		{"SubscribeRequest", `{"socketId":0,"sourceId":1,"width":640,"height":100000}`, ErrInvalid},
		{"SubscribeRequest", `{"socketId":0.5,"sourceId":1,"width":640,"height":360}`, ErrMalformed},
		{"OperationResponse", `{}`, ErrInvalid},
		{"JoinRequest", `{"callbackUri":"javascript:alert(1)"}`, ErrInvalid},
		{"JoinResponse", `{"callId":"c"}`, ErrInvalid},
		{"InviteRequest", `{"appId":"a b"}`, ErrInvalid},
		{"ErrorBody", `{"error":{"message":"x"}}`, ErrInvalid},
		{"ErrorBody", `{"error":{"code":"x","message":"y"},"detail":1}`, ErrMalformed},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%s/%d", tc.msg, i), func(t *testing.T) {
			v, err := decoders[tc.msg]([]byte(tc.body))
			if !errors.Is(err, tc.want) {
				t.Fatalf("decode %.200s: got %v (%+v), want %v", tc.body, err, v, tc.want)
			}
			if !reflect.ValueOf(v).IsNil() {
				t.Fatalf("a refused message also returned a value: %+v", v)
			}
		})
	}
}

func TestPaths(t *testing.T) {
	mux := http.NewServeMux()
	var got []string
	for _, route := range []string{RouteSubscribe, RouteUnsubscribe, RouteEndCall, RouteJoin, RouteInvite, RouteJWKS} {
		mux.HandleFunc(route, func(w http.ResponseWriter, r *http.Request) {
			got = append(got, route+" "+r.PathValue("callId")+r.PathValue("conferenceId")+"|"+r.PathValue("socketId"))
		})
	}
	reqs := []struct{ method, path string }{
		{"POST", SubscriptionsPath("c-1")},
		{"DELETE", SubscriptionPath("c-1", 2)},
		{"DELETE", CallPath("c-1")},
		{"POST", JoinPath("standup")},
		{"POST", InvitationsPath("standup")},
		{"GET", JWKSPath},
	}
	for _, r := range reqs {
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.path, nil))
	}
	want := []string{
		RouteSubscribe + " c-1|", RouteUnsubscribe + " c-1|2", RouteEndCall + " c-1|",
		RouteJoin + " standup|", RouteInvite + " standup|", RouteJWKS + " |",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("routed %q, want %q", got, want)
	}
}

func TestWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, CodeNotFound, "no call c-9")
	if rec.Code != 404 || rec.Header().Get("Content-Type") != ContentTypeJSON {
		t.Fatalf("status %d type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	e, err := DecodeErrorBody(rec.Body.Bytes())
	if err != nil || e.Error.Code != CodeNotFound {
		t.Fatalf("%+v %v", e, err)
	}
}

func TestReadBody(t *testing.T) {
	if _, err := ReadBody(strings.NewReader(strings.Repeat("x", MaxBodyBytes+1))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized body: %v", err)
	}
	b, err := ReadBody(strings.NewReader("{}"))
	if err != nil || string(b) != "{}" {
		t.Fatalf("%q %v", b, err)
	}
}

func BenchmarkDecodeNotification(b *testing.B) {
	body := []byte(valid["Notification"][2])
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeNotification(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeIncomingCall(b *testing.B) {
	body := []byte(valid["IncomingCall"][0])
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeIncomingCall(body); err != nil {
			b.Fatal(err)
		}
	}
}
