package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/daemon"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/reconcile"
	"github.com/cfaccess/reconciler/internal/report"
)

// Config says what to serve, and where.
type Config struct {
	// Listen is the address of metrics, health, status, and the webhooks
	// unless WebhookListen is set.
	Listen string
	// WebhookListen, when set, is a separate address serving only the
	// webhooks: the one port to expose to the Git host.
	WebhookListen string
	// Gatherer is the registry /metrics serves.
	Gatherer prometheus.Gatherer
	// Board is the loop's status and readiness.
	Board *daemon.Board
	// Ready, when set, says whether /readyz answers ready, and why not
	// (run --leader-elect: a standby is ready while it can take over);
	// the board's readiness otherwise.
	Ready func() error
	// Details shows emails, commit authors and subjects in /status
	// (masked by default: anyone who can reach Listen can read it).
	Details bool
	// Webhook, when set, serves POST /hooks/github and /hooks/gitlab.
	Webhook *gitsource.Webhook
	// StatusHosts are the host names, besides IP addresses and localhost,
	// that the status page and /status answer to (--status-host): a page
	// elsewhere cannot read them through a name it points at this
	// address (DNS rebinding).
	StatusHosts []string
}

// Server is the daemon's HTTP servers, listening.
type Server struct {
	cfg       Config
	ln, hooks net.Listener
}

// Listen binds the addresses of cfg; Serve then serves them.
func Listen(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	var hooks net.Listener
	if cfg.WebhookListen != "" {
		if hooks, err = net.Listen("tcp", cfg.WebhookListen); err != nil {
			ln.Close()
			return nil, fmt.Errorf("--webhook-listen %s: %w", cfg.WebhookListen, err)
		}
	}
	return New(cfg, ln, hooks), nil
}

// New serves cfg on listeners already bound: ln, and hooks for the
// webhooks alone when not nil (cfg's addresses are not used).
func New(cfg Config, ln, hooks net.Listener) *Server {
	return &Server{cfg: cfg, ln: ln, hooks: hooks}
}

// Addr is the address of the main server (the port chosen, for ":0").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HookAddr is the address of the webhook server ("" without one).
func (s *Server) HookAddr() string {
	if s.hooks == nil {
		return ""
	}
	return s.hooks.Addr().String()
}

// Serve serves until ctx ends, then shuts down within 5 s.
func (s *Server) Serve(ctx context.Context) error {
	type served struct {
		ln  net.Listener
		srv *http.Server
	}
	all := []served{{s.ln, newServer(Handler(s.cfg, s.hooks == nil))}}
	if s.hooks != nil {
		all = append(all, served{s.hooks, newServer(HookHandler(s.cfg.Webhook))})
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, x := range all {
		g.Go(func() error {
			if err := x.srv.Serve(x.ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return x.srv.Shutdown(sctx)
		})
	}
	return g.Wait()
}

// newServer is an HTTP server with limits for every phase of a request:
// anyone who can reach the port gets no more than these (slow or idle
// connections are closed).
func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       gitsource.BodyTimeout + 5*time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// HookHandler serves the webhooks alone (nothing without a webhook).
func HookHandler(h *gitsource.Webhook) http.Handler {
	mux := http.NewServeMux()
	mountHooks(mux, h)
	return mux
}

func mountHooks(mux *http.ServeMux, h *gitsource.Webhook) {
	if h != nil {
		mux.Handle("/hooks/github", h.GitHub())
		mux.Handle("/hooks/gitlab", h.GitLab())
	}
}

// Handler serves metrics, health and status, and the webhooks when hooks
// is true.
func Handler(cfg Config, hooks bool) http.Handler {
	mux := http.NewServeMux()
	if cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if cfg.Ready != nil {
			if err := cfg.Ready(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		} else if !cfg.Board.Ready() {
			http.Error(w, "no successful reconcile yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(cfg, w, r) {
			return
		}
		w.Header().Set("X-Frame-Options", "DENY")
		st := cfg.Board.Status()
		if !cfg.Details {
			st = Masked(st)
		}
		if r.URL.Query().Get("members") != "true" {
			st = withoutMembers(st)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = report.WriteJSON(w, st)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(cfg, w, r) {
			return
		}
		st := cfg.Board.Status()
		if !cfg.Details {
			st = Masked(st)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// No frame may hold it (clickjacking), for browsers that know
		// either header.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if err := page.Execute(w, pageData{Status: st, Details: cfg.Details}); err != nil {
			http.Error(w, "render the status page", http.StatusInternalServerError)
		}
	})
	if hooks {
		mountHooks(mux, cfg.Webhook)
	}
	return mux
}

// hostAllowed answers 421 to a request for the status of a host that is
// neither an IP address, localhost, nor one of cfg.StatusHosts: a web page
// that points a name of its own at this address (DNS rebinding) gets
// nothing, as the browser sends that name.
func hostAllowed(cfg Config, w http.ResponseWriter, r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost") ||
		slices.ContainsFunc(cfg.StatusHosts, func(s string) bool { return strings.EqualFold(s, host) }) {
		return true
	}
	http.Error(w, fmt.Sprintf("host %q is not served: the status answers IP addresses and localhost; to reach it by this name, run with --status-host %s",
		report.Field(host), report.Field(host)), http.StatusMisdirectedRequest)
	return false
}

// emailPattern finds email addresses in text, to mask them: the whole
// run of characters around an @ up to a space or a separator. A local
// part may hold almost anything (o'brien@, "a b"@, x!y@): masking more
// than the address is harmless, masking less leaks part of it.
var emailPattern = regexp.MustCompile(`"[^"\n]*"@[^\s<>(),;]*|[^\s<>(),;]*@[^\s<>(),;]*`)

func maskEmails(s string) string { return emailPattern.ReplaceAllString(s, "[email]") }

func maskAll(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = maskEmails(s)
	}
	return out
}

// Masked is the status for anyone who can reach the port: emails, commit
// authors and subjects removed.
func Masked(st daemon.Status) daemon.Status {
	maskRev := func(r *daemon.RevisionStatus) *daemon.RevisionStatus {
		if r == nil {
			return nil
		}
		return &daemon.RevisionStatus{SHA: r.SHA}
	}
	maskFindings := func(fs []check.Finding) []check.Finding {
		out := make([]check.Finding, len(fs))
		for i, f := range fs {
			f.Message, f.Source = maskEmails(f.Message), maskEmails(f.Source)
			out[i] = f
		}
		return out
	}
	st.Revision = maskRev(st.Revision)
	if st.BadRevision != nil {
		b := *st.BadRevision
		b.Revision, b.Findings = maskRev(b.Revision), maskFindings(b.Findings)
		st.BadRevision = &b
	}
	st.SourceError = maskEmails(st.SourceError)
	st.Violations = maskFindings(st.Violations)
	accounts := make([]daemon.AccountStatus, len(st.Accounts))
	for i, a := range st.Accounts {
		a.Error, a.Name, a.Breaker = maskEmails(a.Error), maskEmails(a.Name), maskEmails(a.Breaker)
		a.Outside = maskAll(a.Outside)
		a.NotChecked = maskAll(a.NotChecked)
		if a.Read != nil {
			r := *a.Read
			r.AuditLogError, r.Note = maskEmails(r.AuditLogError), maskEmails(r.Note)
			a.Read = &r
		}
		drift := make([]daemon.DriftStatus, len(a.Drift))
		for j, d := range a.Drift {
			d.Email, d.Actor, d.IP, d.Group, d.Action = maskEmails(d.Email), maskEmails(d.Actor), "", maskEmails(d.Group), maskEmails(d.Action)
			drift[j] = d
		}
		if a.Drift != nil {
			a.Drift = drift
		}
		members := make([]daemon.MemberStatus, len(a.Members))
		for j, m := range a.Members {
			m.Email, m.Access, m.Grants, m.Reasons = maskEmails(m.Email), maskAll(m.Access), maskAll(m.Grants), maskAll(m.Reasons)
			members[j] = m
		}
		if a.Members != nil {
			a.Members = members
		}
		expiring := make([]daemon.ExpiryStatus, len(a.Expiring))
		for j, x := range a.Expiring {
			x.Email, x.Source = maskEmails(x.Email), maskEmails(x.Source)
			expiring[j] = x
		}
		if a.Expiring != nil {
			a.Expiring = expiring
		}
		elsewhere := make([]reconcile.CredentialUse, len(a.CredentialsElsewhere))
		for j, u := range a.CredentialsElsewhere {
			u.Subject, u.Actor, u.IP, u.UserAgent, u.Action = maskEmails(u.Subject), maskEmails(u.Actor), "", maskEmails(u.UserAgent), maskEmails(u.Action)
			elsewhere[j] = u
		}
		if a.CredentialsElsewhere != nil {
			a.CredentialsElsewhere = elsewhere
		}
		accounts[i] = a
	}
	st.Accounts = accounts
	recent := make([]daemon.RecentChange, len(st.Recent))
	for i, c := range st.Recent {
		c.Email, c.DriftActor, c.Group = maskEmails(c.Email), maskEmails(c.DriftActor), maskEmails(c.Group)
		recent[i] = c
	}
	if st.Recent != nil {
		st.Recent = recent
	}
	return st
}

// withoutMembers leaves the member lists out of a status (they can be
// long): /status?members=true has them.
func withoutMembers(st daemon.Status) daemon.Status {
	accounts := make([]daemon.AccountStatus, len(st.Accounts))
	for i, a := range st.Accounts {
		a.Members, a.MembersOmitted = nil, 0
		accounts[i] = a
	}
	st.Accounts = accounts
	return st
}
