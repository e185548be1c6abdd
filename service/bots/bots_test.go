package bots

import (
	"errors"
	"sync"
	"testing"

	"github.com/switchboard-rtc/switchboard/service/config"
)

const secret = "0123456789abcdef0123456789abcdef"

func TestRegistry(t *testing.T) {
	r, err := New([]config.Bot{{AppID: "echo", Secret: secret, WebhookURL: "http://127.0.0.1:9/bot/"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Lookup("echo")
	if err != nil || b.WebhookURL != "http://127.0.0.1:9/bot" || b.DisplayName != "echo" || string(b.Secret) != secret {
		t.Fatalf("%+v %v", b, err)
	}
	if _, err := r.Lookup("nobody"); !errors.Is(err, ErrUnknown) {
		t.Fatal(err)
	}
	// An invalid reload changes nothing.
	if err := r.Replace([]config.Bot{{AppID: "x", Secret: "short", WebhookURL: "http://127.0.0.1/"}}); err == nil {
		t.Fatal("invalid list accepted")
	}
	if ids := r.AppIDs(); len(ids) != 1 || ids[0] != "echo" {
		t.Fatal(ids)
	}
	// A valid reload swaps; the value held from before is unchanged.
	if err := r.Replace([]config.Bot{{AppID: "rec", Secret: secret, WebhookURL: "https://rec.example.com"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lookup("echo"); !errors.Is(err, ErrUnknown) {
		t.Fatal("echo still registered")
	}
	if b.AppID != "echo" || b.WebhookURL != "http://127.0.0.1:9/bot" {
		t.Fatal("held entry changed")
	}
	var zero Registry
	if _, err := zero.Secret("x"); !errors.Is(err, ErrUnknown) || zero.AppIDs() != nil {
		t.Fatal("zero registry")
	}
}

func TestConcurrentReload(t *testing.T) {
	r, _ := New(nil)
	lists := [][]config.Bot{
		{{AppID: "a", Secret: secret, WebhookURL: "http://127.0.0.1/a"}},
		{{AppID: "a", Secret: secret, WebhookURL: "http://127.0.0.1/a2"}, {AppID: "b", Secret: secret, WebhookURL: "http://127.0.0.1/b"}},
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				if i%2 == 0 {
					_ = r.Replace(lists[j%2])
				} else if b, err := r.Lookup("a"); err == nil && b.AppID != "a" {
					t.Error("torn read")
				}
			}
		})
	}
	wg.Wait()
}
