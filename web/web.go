// Package web is the browser client of the calling service: a page of plain ES modules (no
// build step) embedded in the binary. The service mounts Handler at "/".
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Handler serves the page at "/" and its assets under "/static/". Anything else is 404.
func Handler() http.Handler {
	static, _ := fs.Sub(files, "static")
	assets := http.StripPrefix("/static/", http.FileServerFS(static))
	index, _ := fs.ReadFile(static, "index.html")
	mux := http.NewServeMux()
	mux.Handle("GET /static/", noCache(assets))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(index)
	})
	return mux
}

func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
