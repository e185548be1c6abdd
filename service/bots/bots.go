// Package bots is the calling service's registry of bots: app id, secret, webhook base URL and
// display name, as configured.
//
// The registry is an immutable snapshot behind an atomic pointer: Replace swaps in a new list
// at once (a configuration reload), and readers never lock. A call copies its bot's entry when it
// is placed, so calls in flight keep working with the entry they started with, even if the bot is
// removed or changed by a reload.
package bots

import (
	"errors"
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/switchboard-rtc/switchboard/service/config"
)

// ErrUnknown is returned for an app id that is not registered.
var ErrUnknown = errors.New("bots: unknown app id")

// Bot is one registered bot. It is a value: holding one keeps it unchanged across reloads.
type Bot struct {
	AppID       string
	Secret      []byte
	WebhookURL  string // base URL, no trailing slash
	DisplayName string
}

// Registry holds the current bot list. The zero value is an empty registry. It is safe for
// concurrent use.
type Registry struct {
	snap atomic.Pointer[map[string]Bot]
}

// New makes a registry from the configured bots (validated with config.ValidateBots).
func New(list []config.Bot) (*Registry, error) {
	r := &Registry{}
	if err := r.Replace(list); err != nil {
		return nil, err
	}
	return r, nil
}

// Replace validates list and, if it is valid, swaps it in atomically. An invalid list changes
// nothing.
func (r *Registry) Replace(list []config.Bot) error {
	list = append([]config.Bot(nil), list...)
	if err := config.ValidateBots(list); err != nil {
		return fmt.Errorf("replace bot registry: %w", err)
	}
	m := make(map[string]Bot, len(list))
	for _, b := range list {
		m[b.AppID] = Bot{AppID: b.AppID, Secret: []byte(b.Secret), WebhookURL: b.WebhookURL, DisplayName: b.DisplayName}
	}
	r.snap.Store(&m)
	return nil
}

// Lookup returns the bot registered as appID.
func (r *Registry) Lookup(appID string) (Bot, error) {
	if m := r.snap.Load(); m != nil {
		if b, ok := (*m)[appID]; ok {
			return b, nil
		}
	}
	return Bot{}, fmt.Errorf("bot %q: %w", appID, ErrUnknown)
}

// Secret returns the HS256 key of appID's tokens (for the REST API's token check).
func (r *Registry) Secret(appID string) ([]byte, error) {
	b, err := r.Lookup(appID)
	if err != nil {
		return nil, err
	}
	return b.Secret, nil
}

// AppIDs returns the registered app ids, sorted.
func (r *Registry) AppIDs() []string {
	m := r.snap.Load()
	if m == nil {
		return nil
	}
	ids := make([]string, 0, len(*m))
	for id := range *m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
