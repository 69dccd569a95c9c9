package gitsource

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestGitHubWebhook(t *testing.T) {
	t.Parallel()
	secret := []byte("s3cret")
	var triggers atomic.Int32
	var results []string
	h := &Webhook{Secret: secret, Trigger: func() { triggers.Add(1) }, Observe: func(host, r string) { results = append(results, r) }}
	body := `{"ref":"refs/heads/main"}`
	tests := []struct {
		name, method, sig, event, delivery, body string
		want                                     int
	}{
		{"signed push", "POST", SignGitHub(secret, []byte(body)), "push", "d1", body, 202},
		{"replayed", "POST", SignGitHub(secret, []byte(body)), "push", "d1", body, 200},
		{"missing signature", "POST", "", "push", "d2", body, 401},
		{"wrong secret", "POST", SignGitHub([]byte("other"), []byte(body)), "push", "d3", body, 401},
		{"signature of another body", "POST", SignGitHub(secret, []byte(`{}`)), "push", "d4", body, 401},
		{"not hex", "POST", "sha256=zz", "push", "d5", body, 401},
		{"sha1 only", "POST", "sha1=abc", "push", "d6", body, 401},
		{"ping", "POST", SignGitHub(secret, []byte(body)), "ping", "d7", body, 200},
		{"GET", "GET", "", "", "", "", 405},
		{"oversized", "POST", "sha256=00", "push", "d8", strings.Repeat("x", MaxWebhookBody+1), 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "/hooks/github", strings.NewReader(tc.body))
			req.Header.Set("X-Hub-Signature-256", tc.sig)
			req.Header.Set("X-GitHub-Event", tc.event)
			req.Header.Set("X-GitHub-Delivery", tc.delivery)
			rec := httptest.NewRecorder()
			h.GitHub().ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("status %d, want %d", rec.Code, tc.want)
			}
		})
	}
	if n := triggers.Load(); n != 1 {
		t.Errorf("%d triggers, want 1", n)
	}
}

func TestGitLabWebhook(t *testing.T) {
	t.Parallel()
	var triggers atomic.Int32
	h := &Webhook{Secret: []byte("tok"), Trigger: func() { triggers.Add(1) }}
	for _, tc := range []struct {
		token, event string
		want         int
	}{{"tok", "Push Hook", 202}, {"nope", "Push Hook", 401}, {"", "Push Hook", 401}, {"tok", "Issue Hook", 200}} {
		req := httptest.NewRequest(http.MethodPost, "/hooks/gitlab", strings.NewReader("{}"))
		req.Header.Set("X-Gitlab-Token", tc.token)
		req.Header.Set("X-Gitlab-Event", tc.event)
		rec := httptest.NewRecorder()
		h.GitLab().ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%q %q: status %d, want %d", tc.token, tc.event, rec.Code, tc.want)
		}
	}
	if triggers.Load() != 1 {
		t.Errorf("%d triggers, want 1", triggers.Load())
	}
	empty := &Webhook{}
	req := httptest.NewRequest(http.MethodPost, "/hooks/gitlab", strings.NewReader("{}"))
	rec := httptest.NewRecorder()
	empty.GitLab().ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Errorf("no secret configured, empty token: %d, want 401", rec.Code)
	}
}

// FuzzGitHubSignature: no panic, and only the right signature verifies.
func FuzzGitHubSignature(f *testing.F) {
	f.Add([]byte("secret"), []byte(`{"ref":"refs/heads/main"}`), "sha256=00")
	f.Add([]byte(""), []byte(""), "")
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		ok := VerifyGitHubSignature(secret, body, header)
		if ok && (len(secret) == 0 || header != SignGitHub(secret, body) && !strings.EqualFold(header, SignGitHub(secret, body))) {
			t.Fatalf("verified a wrong signature %q", header)
		}
		if len(secret) > 0 && !VerifyGitHubSignature(secret, body, SignGitHub(secret, body)) {
			t.Fatal("the right signature did not verify")
		}
	})
}

// FuzzWebhook sends arbitrary deliveries (body, signature or token, event,
// delivery id) to both handlers: the answer is one of the documented
// statuses, and a fetch is triggered exactly when the delivery is a push
// authenticated for this very body.
func FuzzWebhook(f *testing.F) {
	secret := []byte("fuzz-secret")
	f.Add([]byte(`{"ref":"refs/heads/main"}`), "", "push", "d1", true)
	f.Add([]byte(`{}`), "sha256=", "push", "d2", false)
	f.Add([]byte(""), "fuzz-secret", "Push Hook", "", false)
	f.Add([]byte(strings.Repeat("{", 100)), "SHA256=ABC", "Tag Push Hook", "d3", true)
	f.Fuzz(func(t *testing.T, body []byte, auth, event, delivery string, sign bool) {
		var triggers atomic.Int32
		h := &Webhook{Secret: secret, Trigger: func() { triggers.Add(1) }}
		github := auth
		if sign {
			github = SignGitHub(secret, body)
		}
		for _, host := range []string{"github", "gitlab"} {
			triggers.Store(0)
			req := httptest.NewRequest(http.MethodPost, "/hooks/"+host, strings.NewReader(string(body)))
			var handler http.Handler
			var authentic, push bool
			if host == "github" {
				req.Header.Set("X-Hub-Signature-256", github)
				req.Header.Set("X-GitHub-Event", event)
				req.Header.Set("X-GitHub-Delivery", delivery)
				handler, push = h.GitHub(), event == "push"
				authentic = strings.EqualFold(github, SignGitHub(secret, body))
			} else {
				req.Header.Set("X-Gitlab-Token", auth)
				req.Header.Set("X-Gitlab-Event", event)
				req.Header.Set("X-Gitlab-Event-UUID", delivery)
				handler, push = h.GitLab(), event == "Push Hook" || event == "Tag Push Hook"
				authentic = auth == string(secret) && req.Header.Get("X-Gitlab-Token") == auth
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			switch rec.Code {
			case http.StatusAccepted, http.StatusOK, http.StatusUnauthorized:
			default:
				t.Fatalf("%s: status %d", host, rec.Code)
			}
			if rec.Code == http.StatusUnauthorized == authentic {
				t.Fatalf("%s: status %d for an authentic=%v delivery", host, rec.Code, authentic)
			}
			if triggered := triggers.Load() == 1; triggered != (rec.Code == http.StatusAccepted) || triggered && !(authentic && push) {
				t.Fatalf("%s: triggered=%v with status %d (authentic %v, push %v)", host, triggered, rec.Code, authentic, push)
			}
		}
	})
}
