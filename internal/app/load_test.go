package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/gitsource"
)

// TestWebhookFlood: 1,000 signed deliveries a second for 10 s (2 s with
// -short) — what a replayed delivery or a misbehaving Git host could send
// — coalesce into at most one reconcile per --min-trigger-interval, every
// delivery is answered, and the daemon's memory stays flat.
func TestWebhookFlood(t *testing.T) {
	const rate = 1000
	duration := 10 * time.Second
	if testing.Short() {
		duration = 2 * time.Second
	}
	e := newE2E(t)
	de := startDaemon(t, e, time.Hour, "--min-trigger-interval", "1s", "--log-format", "json")
	de.waitReady()
	reconciles := func() int {
		_, m := de.get("/metrics")
		n := 0
		for _, v := range reconcileTotal.FindAllStringSubmatch(m, -1) {
			f, _ := strconv.ParseFloat(v[1], 64)
			n += int(f)
		}
		return n
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := reconciles()
	body := []byte(`{"ref":"refs/heads/main"}`)
	sig := gitsource.SignGitHub([]byte(webhookSecret), body)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var sent, answered, failed atomic.Int64
	statuses := sync.Map{}
	ctx, cancel := context.WithTimeout(t.Context(), duration)
	defer cancel()
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / rate * 16) // 16 deliveries per tick
	defer tick.Stop()
	var heapAfter1s uint64
	start := time.Now()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		if heapAfter1s == 0 && time.Since(start) > time.Second {
			heapAfter1s = heap()
		}
		for range 16 {
			n := sent.Add(1)
			wg.Go(func() {
				req, _ := http.NewRequest("POST", de.base+"/hooks/github", strings.NewReader(string(body)))
				req.Header.Set("X-GitHub-Event", "push")
				req.Header.Set("X-GitHub-Delivery", fmt.Sprint("flood-", n))
				req.Header.Set("X-Hub-Signature-256", sig)
				res, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				answered.Add(1)
				c, _ := statuses.LoadOrStore(res.StatusCode, new(atomic.Int64))
				c.(*atomic.Int64).Add(1)
			})
		}
	}
	wg.Wait()
	took := time.Since(start)
	time.Sleep(1500 * time.Millisecond) // the last coalesced reconcile
	heapEnd := heap()
	got := reconciles() - before
	codes := map[int]int64{}
	statuses.Range(func(k, v any) bool { codes[k.(int)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("%d deliveries in %v (%.0f/s): %d answered %v, %d failed; %d reconciles; heap %d MB after 1 s, %d MB at the end",
		sent.Load(), took.Round(time.Millisecond), float64(sent.Load())/took.Seconds(), answered.Load(), codes, failed.Load(), got,
		heapAfter1s>>20, heapEnd>>20)
	if failed.Load() > 0 || codes[http.StatusAccepted] != answered.Load() {
		t.Errorf("deliveries not all accepted: %v, %d failed", codes, failed.Load())
	}
	if float64(sent.Load()) < 0.5*rate*duration.Seconds() { // a loaded CI machine may lag; the log shows the rate reached
		t.Errorf("only %d deliveries sent: the load was not reached", sent.Load())
	}
	// One reconcile per second at most, plus the one in flight at the start.
	if limit := int(took.Seconds()) + 2; got < 1 || got > limit {
		t.Errorf("%d reconciles for %v of deliveries, want 1..%d", got, took, limit)
	}
	if heapAfter1s > 0 && heapEnd > heapAfter1s+16<<20 {
		t.Errorf("heap grew from %d MB to %d MB under load", heapAfter1s>>20, heapEnd>>20)
	}
}

var reconcileTotal = regexp.MustCompile(`(?m)^cfaccess_reconcile_total\{[^}]*\} (\S+)$`)
