package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/web"
)

// TestHandler: the page at "/", its assets under /static/ (never cached stale), 404 for
// anything else, 405 for other methods.
func TestHandler(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		status       int
		typ, body    string
	}{
		{"GET", "/", 200, "text/html", `<script type="module" src="/static/js/app.js">`},
		{"GET", "/?call=echo&name=Ann", 200, "text/html", `id="lobby"`},
		{"GET", "/static/js/app.js", 200, "javascript", "window.sb"},
		{"GET", "/static/js/signal.js", 200, "javascript", "resume"},
		{"GET", "/static/js/stats.js", 200, "javascript", "getStats"},
		{"GET", "/static/js/icons.js", 200, "javascript", "<svg"},
		{"GET", "/static/style.css", 200, "text/css", ".tile"},
		{"GET", "/static/nope.js", 404, "", ""},
		{"GET", "/nope", 404, "", ""},
		{"POST", "/", 405, "", ""},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, res.StatusCode, tc.status)
			continue
		}
		if tc.status != 200 {
			continue
		}
		if ct := res.Header.Get("Content-Type"); !strings.Contains(ct, tc.typ) {
			t.Errorf("%s: Content-Type %q, want %s", tc.path, ct, tc.typ)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q", tc.path, cc)
		}
		if !strings.Contains(string(body), tc.body) {
			t.Errorf("%s: body lacks %q", tc.path, tc.body)
		}
	}
}
