package service

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserCallsEcho is what `make run` promises, with a real browser: headless Chromium (fake
// microphone and camera) opens the service's page at /?call=echo, the page calls the echo bot
// over /ws, and gets the bot's audio and video back (packets and decoded frames counted by the
// page's own subscriber connection). Skipped when Chromium is not installed.
func TestBrowserCallsEcho(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed")
	}
	if testing.Short() {
		t.Skip("starts a browser")
	}
	s := newConfServer(t, Conferencing{})
	runEcho(t, s)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 2*liveness)
	defer cancelT()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(s.URL()+"/?call=echo&name=Tester")); err != nil {
		t.Fatal(err)
	}
	// The page's subscriber connection receives the bot's audio and decodes its video.
	const stats = `(async () => {
		const c = window.sb && window.sb.call;
		if (!c || !c.sub) return {audio: 0, frames: 0, tracks: 0};
		let audio = 0, frames = 0;
		(await c.sub.getStats()).forEach((r) => {
			if (r.type === 'inbound-rtp' && r.kind === 'audio') audio += r.packetsReceived || 0;
			if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
		});
		return {audio, frames, tracks: c.remoteStreams.size};
	})()`
	type result struct{ Audio, Frames, Tracks int }
	deadline := time.Now().Add(liveness)
	var got result
	for {
		got, err = chromedp.Run(ctx, chromedp.Evaluate[result](stats, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		if got.Audio >= 100 && got.Frames >= 20 && got.Tracks >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page got %+v from the echo bot", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the page received %d audio packets and decoded %d video frames from the echo bot", got.Audio, got.Frames)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.sb.call.end('left')`)); err != nil {
		t.Fatal(err)
	}
}
