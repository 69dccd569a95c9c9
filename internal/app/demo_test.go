package app

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the demo in-process for a few seconds: it must converge,
// correct the dashboard change, expire the short grant, and serve /metrics.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for seconds of real time")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, Env{Args: []string{"demo", "--listen", "127.0.0.1:0", "--jit-after", "3s", "--dashboard-change-after", "500ms"},
			Getenv: func(string) string { return "" }, Stdout: pw, Stderr: io.Discard})
		pw.Close()
	}()
	metricsURL := regexp.MustCompile(`metrics  (http://\S+/metrics)`)
	var seen []string
	converged := false
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		seen = append(seen, line)
		if m := metricsURL.FindStringSubmatch(line); m != nil {
			res, err := http.Get(m[1])
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || !strings.Contains(string(body), "cfaccess_build_info") {
				t.Errorf("/metrics: %d", res.StatusCode)
			}
		}
		if strings.HasPrefix(line, "Converged:") {
			converged = true
			cancel()
		}
	}
	code := <-done
	out := strings.Join(seen, "\n")
	if !converged {
		t.Fatalf("did not converge (exit %d):\n%s", code, out)
	}
	for _, want := range []string{"Applied: ", "Plan: 0 to invite, 0 to update, 0 to remove.", "drift corrected", "with no commit"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if code != ExitOK {
		t.Errorf("exit %d", code)
	}
}
