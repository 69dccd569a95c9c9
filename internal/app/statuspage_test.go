package app

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromium finds a headless browser: Debian's chromium package, which
// .ci/run installs (CFACCESS_REQUIRE_CHROMIUM makes its absence a failure
// there).
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a browser (the full run, go test ./..., loads the page in Chromium)")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CFACCESS_REQUIRE_CHROMIUM") != "" {
		t.Fatal("chromium not found (apt-get install chromium)")
	}
	t.Skip("chromium not found; .ci/run installs it")
	return ""
}

// browse runs headless Chromium on url with args, and returns its output.
func browse(t *testing.T, browser, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, browser, append(all, url)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// TestStatusPageInChromium: the daemon's status page, loaded by a real
// browser from a running daemon over the fake, shows who has which access
// and from which grant, the pending invitations, the next expiry and the
// health; screenshot taken. `reconciler status` prints the same view.
func TestStatusPageInChromium(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	e := newE2E(t)
	d := startDaemon(t, e, "--status-details")
	d.waitReady()
	dom := string(browse(t, browser, d.base+"/", "--dump-dom"))
	rows := regexp.MustCompile(`(?s)<tr class="member">(.*?)</tr>`).FindAllStringSubmatch(dom, -1)
	byEmail := map[string]string{}
	for _, r := range rows {
		cells := regexp.MustCompile(`<[^>]+>`).ReplaceAllString(r[1], " ")
		for _, f := range strings.Fields(cells) {
			if strings.Contains(f, "@") {
				byEmail[f] = cells
				break
			}
		}
	}
	for email, want := range map[string][]string{
		"alice@example.com": {"accepted", "Domain DNS on zone:example.com", "grants.yaml:2", "OPS-1 on-call"},
		"pat@example.com":   {"pending", "for", "Domain DNS on zone:example.com", "grants.yaml:2"},
		"owner@example.com": {"Super Administrator - All Privileges", "protected: never changed by cfaccess"},
	} {
		row, ok := byEmail[email]
		if !ok {
			t.Errorf("no row for %s in the page:\n%s", email, dom)
			continue
		}
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("%s's row lacks %q: %s", email, w, row)
			}
		}
	}
	for _, w := range []string{`<span class="ok">ready</span>`, "Next expiries", "erin@example.com", e.Head()[:12], "Recent changes"} {
		if !strings.Contains(dom, w) {
			t.Errorf("the page lacks %q", w)
		}
	}
	shot := filepath.Join(t.TempDir(), "status.png")
	if p := os.Getenv("CFACCESS_SCREENSHOT"); p != "" {
		shot = p
	}
	browse(t, browser, d.base+"/", "--screenshot="+shot, "--window-size=1280,1400", "--hide-scrollbars")
	if info, err := os.Stat(shot); err != nil || info.Size() < 10_000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}

	code, out, errOut := e.run("status", "--addr", d.base)
	if code != ExitOK || !strings.Contains(out, "Health: ready") || !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "grants.yaml:2") {
		t.Errorf("reconciler status: exit %d\n%s%s", code, out, errOut)
	}
}
