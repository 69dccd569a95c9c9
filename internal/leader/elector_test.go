package leader

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/client-go/rest"

	"github.com/cfaccess/reconciler/internal/testkit"
)

const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
	// handover is how soon a standby tries again: client-go waits the
	// retry period plus up to JitterFactor (1.2) of it between tries.
	handover = retryPeriod * 22 / 10
)

// replica is one elector of a test and what its terms did.
type replica struct {
	id     string
	e      *Elector
	cancel context.CancelFunc
	done   chan struct{}
}

// terms records every term's start and end, and whether two overlapped.
type terms struct {
	mu       sync.Mutex
	running  map[string]time.Time
	overlaps []string
	started  map[string][]time.Time
	ended    map[string][]time.Time
	applied  map[string][]map[string]string
}

// count is how many terms id has begun.
func (ts *terms) count(id string) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.started[id])
}

func (ts *terms) lead(id string, publish map[string]string) func(context.Context, Term) error {
	return func(ctx context.Context, term Term) error {
		ts.mu.Lock()
		now := time.Now()
		for other := range ts.running {
			ts.overlaps = append(ts.overlaps, fmt.Sprintf("%s started at %v while %s led", id, now, other))
		}
		ts.running[id] = now
		ts.started[id] = append(ts.started[id], now)
		ts.applied[id] = append(ts.applied[id], maps.Clone(term.Applied))
		ts.mu.Unlock()
		if publish != nil {
			term.Publish(publish)
		}
		<-ctx.Done()
		ts.mu.Lock()
		delete(ts.running, id)
		ts.ended[id] = append(ts.ended[id], time.Now())
		ts.mu.Unlock()
		return nil
	}
}

func startReplica(t *testing.T, api *testkit.LeaseAPI, ts *terms, id string, publish map[string]string, onRequest ...func()) *replica {
	t.Helper()
	leases, err := Leases(&rest.Config{Host: "http://kubernetes.test", Transport: testkit.Transport(api.Handler())}, id)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Leases: leases, Namespace: "cfaccess", Name: "cfaccess", ID: id,
		LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod})
	if len(onRequest) > 0 {
		e.lock.onRequest = onRequest[0]
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &replica{id: id, e: e, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := e.Run(ctx, ts.lead(id, publish)); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}()
	return r
}

// Two replicas against one Lease API that refuses stale writes: one
// leads; cut off from the API, it stops before the other takes over,
// which happens within a lease duration and two tries; a graceful stop
// hands the Lease over at the standby's next try; the revisions the
// leader applied reach the next one; never do two terms overlap, and no
// write is allowed past the fence once another replica leads.
func TestOneLeaderAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := testkit.NewLeaseAPI()
		ts := &terms{running: map[string]time.Time{}, started: map[string][]time.Time{}, ended: map[string][]time.Time{},
			applied: map[string][]map[string]string{}}
		a := startReplica(t, api, ts, "a", map[string]string{"repo#main": "sha-a"})
		testkit.Advance(time.Second)
		b := startReplica(t, api, ts, "b", map[string]string{"repo#main": "sha-b"})
		testkit.Advance(time.Minute)

		if !a.e.Role().Leading || b.e.Role().Leading || b.e.Role().Leader != "a" {
			t.Fatalf("a %+v, b %+v: want a leading, b standing by behind a", a.e.Role(), b.e.Role())
		}
		if until := a.e.WritesUntil(); !until.After(time.Now()) || !b.e.WritesUntil().IsZero() {
			t.Errorf("fences: a until %v, b until %v at %v", until, b.e.WritesUntil(), time.Now())
		}
		if got := api.Lease("cfaccess", "cfaccess").Annotations[AppliedAnnotation]; got != `{"repo#main":"sha-a"}` {
			t.Errorf("the Lease carries %q", got)
		}
		if !b.e.InContact() {
			t.Error("the standby is not in contact with the Lease API")
		}

		// a is cut off from the API (a partition, or a process frozen
		// without releasing): it steps down, then b takes over.
		cut := time.Now()
		fence := a.e.WritesUntil()
		api.Down("a", true)
		for ts.count("b") == 0 {
			testkit.Advance(100 * time.Millisecond)
			if time.Since(cut) > time.Minute {
				t.Fatal("b never took over")
			}
		}
		ts.mu.Lock() // the terms' goroutines are blocked or done from here
		took := ts.started["b"][0]
		if len(ts.ended["a"]) != 1 || !ts.ended["a"][0].Before(took) {
			t.Fatalf("a's term ended %v, b's began %v", ts.ended["a"], took)
		}
		if !fence.Before(took) || !a.e.WritesUntil().Before(took) {
			t.Errorf("a could write until %v (then %v); b led from %v", fence, a.e.WritesUntil(), took)
		}
		if lim := leaseDuration + 2*handover; took.Sub(cut) > lim {
			t.Errorf("b took over %v after a was cut off; want within %v", took.Sub(cut), lim)
		}
		t.Logf("cut off at %v: a stepped down after %v, b led after %v", cut.Format(time.TimeOnly), ts.ended["a"][0].Sub(cut), took.Sub(cut))
		if got := ts.applied["b"][0]["repo#main"]; got != "sha-a" {
			t.Errorf("b's term starts with applied %v, want a's", ts.applied["b"][0])
		}
		ts.mu.Unlock()

		// a is back: it stands by behind b.
		api.Down("a", false)
		testkit.Advance(time.Minute)
		if a.e.Role().Leading || a.e.Role().Leader != "b" || a.e.Role().Changed < 1 {
			t.Errorf("a after the partition: %+v", a.e.Role())
		}

		// b stops gracefully: its term ends, then the Lease is released and
		// a takes it at its next try.
		stop := time.Now()
		b.cancel()
		for ts.count("a") < 2 {
			testkit.Advance(100 * time.Millisecond)
			if time.Since(stop) > time.Minute {
				t.Fatal("a never took over")
			}
		}
		<-b.done
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if d := ts.started["a"][1].Sub(stop); d > handover {
			t.Errorf("a took over %v after b stopped; want within %v", d, handover)
		} else {
			t.Logf("graceful stop: a led after %v", d)
		}
		if got := ts.applied["a"][1]["repo#main"]; got != "sha-b" {
			t.Errorf("a's second term starts with applied %v, want b's", ts.applied["a"][1])
		}
		if len(ts.overlaps) > 0 {
			t.Errorf("terms overlapped: %v", ts.overlaps)
		}
		ts.mu.Unlock()
		a.cancel()
		<-a.done
		ts.mu.Lock()
		if l := api.Lease("cfaccess", "cfaccess"); l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
			t.Errorf("the Lease is still held by %q after both stopped", *l.Spec.HolderIdentity)
		}
	})
}

// A standby that gets a webhook asks the leader through the Lease: the
// leader hears of it at its next renewal, and the election is not
// disturbed (the standby's write leaves the spec as it is).
func TestStandbyRequestReachesLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := testkit.NewLeaseAPI()
		ts := &terms{running: map[string]time.Time{}, started: map[string][]time.Time{}, ended: map[string][]time.Time{},
			applied: map[string][]map[string]string{}}
		var mu sync.Mutex
		var heard []time.Time
		a := startReplica(t, api, ts, "a", nil, func() { mu.Lock(); heard = append(heard, time.Now()); mu.Unlock() })
		testkit.Advance(time.Second)
		b := startReplica(t, api, ts, "b", nil)
		testkit.Advance(30 * time.Second)
		asked := time.Now()
		if err := b.e.Request(t.Context()); err != nil {
			t.Fatal(err)
		}
		testkit.Advance(2 * retryPeriod)
		mu.Lock()
		if len(heard) != 1 || heard[0].Sub(asked) > retryPeriod {
			t.Errorf("the leader heard %v of a request at %v", heard, asked)
		}
		mu.Unlock()
		testkit.Advance(time.Minute)
		if !a.e.Role().Leading || b.e.Role().Leading || a.e.Role().Changed != 0 {
			t.Errorf("after the request: a %+v, b %+v", a.e.Role(), b.e.Role())
		}
		mu.Lock()
		if len(heard) != 1 {
			t.Errorf("the leader heard %d requests", len(heard))
		}
		mu.Unlock()
		a.cancel()
		b.cancel()
		<-a.done
		<-b.done
	})
}

// The durations are checked as client-go needs them, and as the Lease
// records them (whole seconds).
func TestConfigChecked(t *testing.T) {
	t.Parallel()
	leases, _ := Leases(&rest.Config{Host: "http://kubernetes.test"}, "x")
	for _, tc := range []struct {
		ld, rd, rp time.Duration
		ok         bool
	}{
		{15 * time.Second, 10 * time.Second, 2 * time.Second, true},
		{6 * time.Second, 4 * time.Second, time.Second, true},
		{1500 * time.Millisecond, time.Second, 100 * time.Millisecond, false},
		{10 * time.Second, 10 * time.Second, 2 * time.Second, false},
		{15 * time.Second, 2 * time.Second, 2 * time.Second, false},
	} {
		_, err := New(Config{Leases: leases, Namespace: "n", Name: "cfaccess", ID: "x", LeaseDuration: tc.ld, RenewDeadline: tc.rd, RetryPeriod: tc.rp})
		if (err == nil) != tc.ok {
			t.Errorf("%v/%v/%v: %v", tc.ld, tc.rd, tc.rp, err)
		}
	}
}
