package leader

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// AppliedAnnotation holds, on the Lease, the revisions the leader last
// applied per followed repository (JSON: key → SHA), so that a replica
// taking over refuses a history rewritten behind the previous leader's
// back as that leader would have.
const AppliedAnnotation = "cfaccess.io/applied"

// RequestAnnotation is set on the Lease by a standby that received a
// webhook or saw the watched directory change: the leader, reading the
// Lease at its next renewal, reconciles (Config.OnRequest). Webhooks
// reach whichever replica the Service picks.
const RequestAnnotation = "cfaccess.io/reconcile-requested"

// lock is the Lease the replicas elect on: client-go's LeaseLock
// (resourcelock.Interface, the same record in the Lease's spec), with two
// more duties. It carries the applied revisions in an annotation, written
// only with a renewal, so only by the holder. And it remembers when this
// replica last wrote itself as the holder: the fence of its writes.
type lock struct {
	leases              coordinationclient.LeasesGetter
	namespace, name, id string
	now                 func() time.Time

	mu    sync.Mutex
	lease *coordinationv1.Lease
	// applied is what the next renewal writes (nil: the annotation as it
	// is).
	applied map[string]string
	// renewed is the renew time of the last record this replica wrote as
	// holder (zero once released); contact the last answer of the API.
	renewed, contact time.Time
	// requested is the last RequestAnnotation seen; onRequest is told of
	// a new one while this replica holds the Lease.
	requested string
	onRequest func()
}

var _ resourcelock.Interface = (*lock)(nil)

// Get reads the Lease; the raw record (compared by the elector to tell a
// renewal) is the spec's alone, so that the annotation changes nothing.
func (l *lock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	lease, err := l.leases.Leases(l.namespace).Get(ctx, l.name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	l.mu.Lock()
	l.lease, l.contact = lease, l.now()
	l.noteRequestLocked()
	l.mu.Unlock()
	record := resourcelock.LeaseSpecToLeaderElectionRecord(&lease.Spec)
	raw, err := json.Marshal(*record)
	if err != nil {
		return nil, nil, err
	}
	return record, raw, nil
}

// Create makes the Lease with this record.
func (l *lock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	l.mu.Lock()
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: l.name, Namespace: l.namespace},
		Spec: resourcelock.LeaderElectionRecordToLeaseSpec(&ler)}
	l.annotateLocked(lease, ler)
	l.mu.Unlock()
	created, err := l.leases.Leases(l.namespace).Create(ctx, lease, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	l.wrote(created, ler)
	return nil
}

// Update writes this record over the Lease last read: the API server
// refuses it if the Lease changed since (its resourceVersion), and the
// elector reads it again.
func (l *lock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	l.mu.Lock()
	if l.lease == nil {
		l.mu.Unlock()
		return errors.New("lease not read yet")
	}
	lease := l.lease.DeepCopy()
	lease.Spec = resourcelock.LeaderElectionRecordToLeaseSpec(&ler)
	l.annotateLocked(lease, ler)
	l.mu.Unlock()
	updated, err := l.leases.Leases(l.namespace).Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	l.wrote(updated, ler)
	return nil
}

// annotateLocked sets the applied revisions on a Lease this replica
// writes as its holder, or releases (client-go releases with an empty
// holder, and only when it holds the Lease): a graceful stop right after
// an apply hands its revision on too.
func (l *lock) annotateLocked(lease *coordinationv1.Lease, ler resourcelock.LeaderElectionRecord) {
	if l.applied == nil || (ler.HolderIdentity != l.id && ler.HolderIdentity != "") {
		return
	}
	b, err := json.Marshal(l.applied)
	if err != nil {
		return
	}
	lease.Annotations = maps.Clone(lease.Annotations)
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[AppliedAnnotation] = string(b)
}

// wrote keeps the Lease written, and when this replica holds it from.
func (l *lock) wrote(lease *coordinationv1.Lease, ler resourcelock.LeaderElectionRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lease, l.contact = lease, l.now()
	l.noteRequestLocked()
	if ler.HolderIdentity == l.id {
		l.renewed = ler.RenewTime.Time
	} else {
		l.renewed = time.Time{} // released
	}
}

// noteRequestLocked tells onRequest of a request newer than the last seen,
// when this replica holds the Lease read.
func (l *lock) noteRequestLocked() {
	v := l.lease.Annotations[RequestAnnotation]
	if v == l.requested {
		return
	}
	l.requested = v
	if h := l.lease.Spec.HolderIdentity; h != nil && *h == l.id && l.onRequest != nil {
		go l.onRequest()
	}
}

// request sets RequestAnnotation on the Lease to value, over whatever the
// Lease holds (read again on a conflict: the spec is left as it is).
func (l *lock) request(ctx context.Context, value string) error {
	var err error
	for range 5 {
		var lease *coordinationv1.Lease
		lease, err = l.leases.Leases(l.namespace).Get(ctx, l.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		lease.Annotations = maps.Clone(lease.Annotations)
		if lease.Annotations == nil {
			lease.Annotations = map[string]string{}
		}
		lease.Annotations[RequestAnnotation] = value
		if _, err = l.leases.Leases(l.namespace).Update(ctx, lease, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
			return err
		}
	}
	return err
}

// RecordEvent records nothing: the elector's transitions are logged and
// counted by the Elector.
func (l *lock) RecordEvent(string) {}

// Identity is this replica's.
func (l *lock) Identity() string { return l.id }

// Describe names the Lease.
func (l *lock) Describe() string { return l.namespace + "/" + l.name }

// recorded returns the applied revisions as the Lease last read holds
// them (nil when none).
func (l *lock) recorded() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lease == nil {
		return nil
	}
	var applied map[string]string
	if v, ok := l.lease.Annotations[AppliedAnnotation]; ok && json.Unmarshal([]byte(v), &applied) == nil {
		return applied
	}
	return nil
}

// publish sets the applied revisions the next renewal writes.
func (l *lock) publish(applied map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.applied = maps.Clone(applied)
}

// held returns the last renewal this replica wrote as holder and the last
// answer of the Lease API.
func (l *lock) held() (renewed, contact time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewed, l.contact
}
