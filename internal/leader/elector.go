package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/klog/v2"
)

// Config configures an Elector. The durations are kube-controller-manager's
// flags' (15 s, 10 s, 2 s by default), in whole seconds: the Lease records
// its duration in seconds.
type Config struct {
	Leases              coordinationclient.LeasesGetter
	Namespace, Name, ID string
	// LeaseDuration is how long a standby waits, from its last sight of a
	// renewal, before it takes the lease; RenewDeadline how long the
	// leader keeps trying to renew before it steps down; RetryPeriod the
	// time between tries.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Observe is told of every change of role, one call at a time.
	Observe func(Role)
	// OnRequest is told, while this replica leads, that another asked for
	// a reconcile (Elector.Request).
	OnRequest func()
	Log       *slog.Logger
	// Now is the clock of the fence (time.Now).
	Now func() time.Time
}

// Role is this replica's part: leading, or standing by behind Leader ("" while unknown).
type Role struct {
	Leading bool
	Leader  string
	// Changed counts the changes of leader this replica has seen.
	Changed int
}

// Term is one stretch of leadership.
type Term struct {
	// Applied are the revisions applied per followed repository, as the
	// Lease recorded them when this replica took it (nil: none).
	Applied map[string]string
	lock    *lock
}

// Publish records the revisions applied: the next renewal writes them on
// the Lease, for the replica that leads next.
func (t Term) Publish(applied map[string]string) { t.lock.publish(applied) }

// Elector campaigns for the Lease with client-go's leaderelection and runs
// a term of the caller's work while this replica holds it.
type Elector struct {
	cfg  Config
	lock *lock

	mu   sync.Mutex
	role Role
}

// New checks the configuration and returns an elector.
func New(cfg Config) (*Elector, error) {
	switch {
	case cfg.Leases == nil || cfg.Namespace == "" || cfg.Name == "" || cfg.ID == "":
		return nil, errors.New("leader election needs the Lease API, a namespace, a name and an identity")
	case cfg.LeaseDuration%time.Second != 0 || cfg.LeaseDuration < time.Second:
		return nil, fmt.Errorf("--leader-elect-lease-duration %v: give whole seconds (the Lease records seconds)", cfg.LeaseDuration)
	case cfg.RenewDeadline <= 0 || cfg.RenewDeadline >= cfg.LeaseDuration:
		return nil, fmt.Errorf("--leader-elect-renew-deadline %v: give less than the lease duration %v (the leader steps down before a standby may take over)", cfg.RenewDeadline, cfg.LeaseDuration)
	case cfg.RetryPeriod <= 0 || float64(cfg.RenewDeadline) <= leaderelection.JitterFactor*float64(cfg.RetryPeriod):
		return nil, fmt.Errorf("--leader-elect-retry-period %v: give less than the renew deadline %v divided by %v", cfg.RetryPeriod, cfg.RenewDeadline, leaderelection.JitterFactor)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Observe == nil {
		cfg.Observe = func(Role) {}
	}
	return &Elector{cfg: cfg, lock: &lock{leases: cfg.Leases, namespace: cfg.Namespace, name: cfg.Name, id: cfg.ID, now: cfg.Now,
		onRequest: cfg.OnRequest}}, nil
}

// WritesUntil is the fence of this replica's writes to Cloudflare: the
// instant its last renewal plus the renew deadline reaches (zero when it
// does not hold the Lease). A standby takes the Lease only a lease
// duration after it last saw a renewal, so a write sent before this
// instant is sent before any other replica leads, by at least the lease
// duration less the renew deadline (5 s by default), whatever this
// process's goroutines are doing.
func (e *Elector) WritesUntil() time.Time {
	renewed, _ := e.lock.held()
	if renewed.IsZero() {
		return time.Time{}
	}
	return renewed.Add(e.cfg.RenewDeadline)
}

// InContact reports whether the Lease API answered within a lease
// duration: a standby that can take over.
func (e *Elector) InContact() bool {
	_, contact := e.lock.held()
	return !contact.IsZero() && e.cfg.Now().Sub(contact) < e.cfg.LeaseDuration
}

// Request asks the leader for a reconcile, through the Lease: a standby
// received a webhook, or saw the watched directory change. The leader
// reads it at its next renewal, within a retry period.
func (e *Elector) Request(ctx context.Context) error {
	err := e.lock.request(ctx, e.cfg.ID+" "+e.cfg.Now().UTC().Format(time.RFC3339Nano))
	if err != nil {
		e.cfg.Log.Warn("could not ask the leader for a reconcile", "error", err)
	}
	return err
}

// Role returns this replica's part.
func (e *Elector) Role() Role {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.role
}

// Run campaigns until ctx ends. Each time this replica takes the Lease it
// runs lead, whose context ends when the Lease is lost or ctx ends; only
// once lead has returned is the Lease given up (released at once on a
// graceful stop) or campaigned for again. An error from lead ends Run.
func (e *Elector) Run(ctx context.Context, lead func(context.Context, Term) error) error {
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(e.cfg.Log.With("lease", e.lock.Describe()).Handler()))
	for ctx.Err() == nil {
		if err := e.campaign(ctx, lead); err != nil {
			return err
		}
	}
	return nil
}

// campaign is one run of client-go's elector: it waits for the Lease,
// then runs lead until the Lease is lost or ctx ends.
func (e *Elector) campaign(ctx context.Context, lead func(context.Context, Term) error) error {
	e.lock.publish(nil) // a past term's revisions are not this one's
	// The elector's context ends only once lead has returned: client-go
	// releases the Lease when it ends (ReleaseOnCancel).
	electCtx, stopElect := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElect()
	elected := make(chan context.Context, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: e.lock, Name: e.cfg.Name, ReleaseOnCancel: true,
		LeaseDuration: e.cfg.LeaseDuration, RenewDeadline: e.cfg.RenewDeadline, RetryPeriod: e.cfg.RetryPeriod,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) { elected <- lctx },
			OnStoppedLeading: func() {},
			OnNewLeader:      e.newLeader,
		},
	})
	if err != nil {
		return err
	}
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		le.Run(electCtx)
	}()
	select {
	case <-ran:
		return nil
	case <-ctx.Done():
		stopElect()
		<-ran
		return nil
	case lctx := <-elected:
		term := Term{Applied: e.lock.recorded(), lock: e.lock}
		e.setRole(func(r *Role) {
			if r.Leader != "" && r.Leader != e.cfg.ID {
				r.Changed++ // counted here: client-go tells newLeader later, if at all first
			}
			r.Leading, r.Leader = true, e.cfg.ID
		})
		e.cfg.Log.Info("leading: this replica holds the lease", "identity", e.cfg.ID)
		tctx, cancel := context.WithCancel(lctx)
		stop := context.AfterFunc(ctx, cancel)
		err := lead(tctx, term)
		stop()
		cancel()
		lost := lctx.Err() != nil && ctx.Err() == nil
		e.setRole(func(r *Role) { r.Leading = false })
		stopElect()
		<-ran
		switch {
		case lost:
			e.cfg.Log.Warn("standing by: the lease was lost (not renewed within the renew deadline); writes stopped", "identity", e.cfg.ID,
				"renew_deadline", e.cfg.RenewDeadline.String())
		case ctx.Err() != nil:
			e.cfg.Log.Info("the lease is given up: stopping", "identity", e.cfg.ID)
		}
		if ctx.Err() == nil && !lost && err == nil {
			err = errors.New("the reconcile loop stopped while leading")
		}
		if lost || ctx.Err() != nil {
			return nil
		}
		return err
	}
}

// newLeader notes the leader client-go saw take the Lease.
func (e *Elector) newLeader(id string) {
	e.setRole(func(r *Role) {
		if r.Leader != "" && r.Leader != id {
			r.Changed++
		}
		r.Leader = id
		if id != e.cfg.ID {
			r.Leading = false
		}
	})
	if id != e.cfg.ID {
		e.cfg.Log.Info("standing by", "identity", e.cfg.ID, "leader", id)
	}
}

// setRole changes the role and tells Observe.
func (e *Elector) setRole(f func(*Role)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(&e.role)
	e.cfg.Observe(e.role)
}
