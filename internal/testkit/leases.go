package testkit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// LeaseAPI serves coordination.k8s.io/v1 Leases as the Kubernetes API
// server does for what leader election asks of it: get, create and
// update, each object with a resourceVersion that every write changes. An
// update whose resourceVersion is not the object's is refused with 409
// Conflict, one without it with 422, a create of an existing name with 409
// AlreadyExists, a missing lease is 404 — metav1.Status bodies, as
// client-go decodes them. Down makes every request fail with 503 (an API
// server unreachable from one replica: a partition).
type LeaseAPI struct {
	mu      sync.Mutex
	leases  map[string]*coordinationv1.Lease
	version int
	down    map[string]bool
	// Writes counts the successful writes.
	Writes int
}

// NewLeaseAPI returns an empty Lease API.
func NewLeaseAPI() *LeaseAPI {
	return &LeaseAPI{leases: map[string]*coordinationv1.Lease{}, down: map[string]bool{}}
}

// Down cuts (true) or restores the API for requests whose User-Agent
// contains agent (cfaccess's names the replica).
func (a *LeaseAPI) Down(agent string, down bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.down[agent] = down
}

// Lease returns a copy of a lease (nil when none).
func (a *LeaseAPI) Lease(namespace, name string) *coordinationv1.Lease {
	a.mu.Lock()
	defer a.mu.Unlock()
	if l := a.leases[namespace+"/"+name]; l != nil {
		return l.DeepCopy()
	}
	return nil
}

// Annotate sets an annotation on a lease, as anyone allowed to update it
// could (a test of what the replicas believe of it).
func (a *LeaseAPI) Annotate(namespace, name, key, value string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.leases[namespace+"/"+name]
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[key] = value
	a.version++
	l.ResourceVersion = strconv.Itoa(a.version)
}

// Handler is the API over HTTP.
func (a *LeaseAPI) Handler() http.Handler {
	mux := http.NewServeMux()
	const base = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
	mux.HandleFunc("GET "+base+"/{name}", a.serve(func(r *http.Request, _ *coordinationv1.Lease) (int, any) {
		if l := a.leases[r.PathValue("ns")+"/"+r.PathValue("name")]; l != nil {
			return http.StatusOK, l
		}
		return notFound(r.PathValue("name"))
	}))
	mux.HandleFunc("POST "+base, a.serve(func(r *http.Request, in *coordinationv1.Lease) (int, any) {
		key := r.PathValue("ns") + "/" + in.Name
		if a.leases[key] != nil {
			return status(http.StatusConflict, metav1.StatusReasonAlreadyExists, fmt.Sprintf("leases.coordination.k8s.io %q already exists", in.Name))
		}
		in.Namespace = r.PathValue("ns")
		in.UID = types.UID("uid-" + in.Name)
		in.CreationTimestamp = metav1.NewTime(time.Now())
		return a.store(key, in, http.StatusCreated)
	}))
	mux.HandleFunc("PUT "+base+"/{name}", a.serve(func(r *http.Request, in *coordinationv1.Lease) (int, any) {
		key := r.PathValue("ns") + "/" + r.PathValue("name")
		cur := a.leases[key]
		switch {
		case cur == nil:
			return notFound(r.PathValue("name"))
		case in.ResourceVersion == "":
			return status(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, "metadata.resourceVersion: Invalid value: 0: must be specified for an update")
		case in.ResourceVersion != cur.ResourceVersion:
			return status(http.StatusConflict, metav1.StatusReasonConflict,
				fmt.Sprintf("Operation cannot be fulfilled on leases.coordination.k8s.io %q: the object has been modified; please apply your changes to the latest version and try again", cur.Name))
		}
		in.UID, in.CreationTimestamp, in.Namespace = cur.UID, cur.CreationTimestamp, cur.Namespace
		return a.store(key, in, http.StatusOK)
	}))
	return mux
}

// serve decodes a request's lease (for writes) and answers under the lock.
func (a *LeaseAPI) serve(f func(*http.Request, *coordinationv1.Lease) (int, any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		code, body := a.answer(r, f)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
}

func (a *LeaseAPI) answer(r *http.Request, f func(*http.Request, *coordinationv1.Lease) (int, any)) (int, any) {
	for agent, down := range a.down {
		if !down || !strings.Contains(r.UserAgent(), agent) {
			continue
		}
		return status(http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "the API server is unreachable")
	}
	in := &coordinationv1.Lease{}
	if r.Method != http.MethodGet {
		if err := json.NewDecoder(r.Body).Decode(in); err != nil {
			return status(http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		}
	}
	return f(r, in)
}

// store keeps a lease written, with a new resourceVersion.
func (a *LeaseAPI) store(key string, in *coordinationv1.Lease, code int) (int, any) {
	a.version++
	a.Writes++
	in.ResourceVersion = strconv.Itoa(a.version)
	in.APIVersion, in.Kind = "coordination.k8s.io/v1", "Lease"
	a.leases[key] = in.DeepCopy()
	return code, in
}

func notFound(name string) (int, any) {
	return status(http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("leases.coordination.k8s.io %q not found", name))
}

func status(code int, reason metav1.StatusReason, msg string) (int, any) {
	return code, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
		Message: msg, Reason: reason, Code: int32(code)}
}
