package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

// Domain-scoped roles go on zones, account-scoped ones on the account.
var (
	domainRoles  = []string{"Domain DNS", "Cache Domain Purge", "Domain Page Shield", "Domain Administrator Read Only", "Domain Waiting Room Read", "Bot Management", "Zone Versioning Read", "Domain API Gateway Read"}
	accountRoles = []string{"Analytics", "Firewall", "Load Balancer", "Log Share Reader"}
)

func main() {
	sizes := flag.String("sizes", "1000,10000,50000", "account sizes, in members")
	zones := flag.Int("zones", 200, "zones in the account")
	roles := flag.Int("roles", 500, "role definitions in the repository")
	drift := flag.Float64("drift", 0.02, "fraction of members that differ: half updated, a quarter missing, a quarter undeclared")
	latency := flag.Duration("latency", 20*time.Millisecond, "latency of every API request")
	memLimit := flag.String("gomemlimit", "", "GOMEMLIMIT for the reconciler (as a Deployment sets from its memory limit)")
	gctrace := flag.Bool("gctrace", false, "print the reconciler's garbage collections (GODEBUG=gctrace=1) to standard error")
	userGroups := flag.Int("user-groups", 0, "user groups in the account (their policies are empty: what is measured is reading them)")
	groupMembers := flag.Int("group-members", 50, "members of each user group")
	cpuRuns := flag.Int("daemon-cpu", 0, "after the steady run, run the daemon with the audit log until it has made this many steady reconciles (each a reused read) and report its CPU time per reconcile, from /proc")
	daemon := flag.Duration("daemon", 0, "after the steady run, run the daemon this long (--interval daemon/10, --full-read-interval daemon/1.1) and report its requests per reconcile, with and without the audit log")
	flag.Parse()

	work, err := os.MkdirTemp("", "cfaccess-bench-")
	check(err)
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "reconciler")
	build := exec.Command("go", "build", "-o", bin, "./cmd/reconciler")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	check(build.Run())

	fmt.Printf("Machine: %d CPUs, %s/%s, %s; fake latency %v per request; %d zones, %d roles, %.0f%% drift; %d user groups of %d members.\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), *latency, *zones, *roles, *drift*100, *userGroups, *groupMembers)
	fmt.Println("| members | run | changes | wall | requests | ceil(N/50)+ceil(groups/50)+10 | peak RSS | per-member refresh model |")
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|---:|")
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		check(err)
		s, dir := account(work, n, *zones, *roles, *drift)
		addUserGroups(s, n, *userGroups, *groupMembers, *drift)
		ts := httptest.NewServer(s)
		s.SetLatency(*latency)
		for _, run := range []string{"drifted", "steady"} {
			s.ResetRequests()
			start := time.Now()
			out, rss := reconcile(bin, dir, ts.URL+fake.BasePath, *memLimit, *gctrace)
			wall := time.Since(start)
			var res struct {
				Summary struct{ Invite, Update, Remove int } `json:"summary"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				fmt.Fprintf(os.Stderr, "%s\n", out)
				check(err)
			}
			changes := res.Summary.Invite + res.Summary.Update + res.Summary.Remove
			reqs := len(s.Requests())
			model := fmt.Sprintf("%d requests, %.1f min of budget", n, float64(n)/1200*5)
			fmt.Printf("| %d | %s | %d | %.2f s | %d | %d | %.0f MB | %s |\n", n, run, changes, wall.Seconds(), reqs,
				int(math.Ceil(float64(n)/50))+int(math.Ceil(float64(*userGroups)/50))+10, float64(rss)/1024, model)
		}
		if *cpuRuns > 0 {
			cpu, full := daemonCPU(bin, dir, ts.URL+fake.BasePath, *cpuRuns, s)
			cpuRows = append(cpuRows, fmt.Sprintf("| %d | %d | %.1f ms | %.0f ms |", n, *cpuRuns, cpu.Seconds()*1000/float64(*cpuRuns), full.Seconds()*1000))
		}
		if *daemon > 0 {
			for _, audit := range []bool{false, true} {
				s.ResetRequests()
				full, reused, reqs, reads, rss := runDaemon(bin, dir, ts.URL+fake.BasePath, *daemon, audit, s)
				daemonRows = append(daemonRows, fmt.Sprintf("| %d | %v | %d | %d | %d | %.0f | %.0f | %.0f MB |", n, audit, reads, full, reused, reqs,
					hourly(reqs, full, reused, audit), float64(rss)/1024))
			}
		}
		ts.Close()
	}
	if len(cpuRows) > 0 {
		fmt.Println("\nThe daemon (`reconciler run --dry-run`, audit log on) over the steady account: CPU time (user and system, from /proc/PID/stat) per steady reconcile — the audit log asked, nothing changed, the last read reused — and of its start (first full read included):")
		fmt.Println("\n| members | reconciles | CPU per reconcile | CPU to start |")
		fmt.Println("|---:|---:|---:|---:|")
		for _, r := range cpuRows {
			fmt.Println(r)
		}
	}
	if len(daemonRows) > 0 {
		fmt.Println("\nThe daemon (`reconciler run --dry-run`) over the steady account, its interval scaled down; requests per hour extrapolated to a 1-minute interval and a 10-minute --full-read-interval:")
		fmt.Println("\n| members | audit log | reconciles | requests per full read | requests per reused read | requests in all | requests / hour at 1 min | peak RSS |")
		fmt.Println("|---:|---|---:|---:|---:|---:|---:|---:|")
		for _, r := range daemonRows {
			fmt.Println(r)
		}
	}
}

var daemonRows, cpuRows []string

// daemonCPU runs `reconciler run --dry-run` with the audit log on a
// short interval and returns the CPU time it spent on n steady reconciles
// (counted by their audit-log queries, after the first two), and on its
// start up to then.
func daemonCPU(bin, dir, api string, n int, s *fake.Server) (perRuns, start time.Duration) {
	s.ResetRequests()
	cmd := exec.Command(bin, "run", "--repo", dir, "--dry-run", "--listen", "127.0.0.1:0", "--interval", "100ms",
		"--full-read-interval", "1h", "--audit-log=true", "--cloudflare-rate-limit", "1000000", "--log-level", "error", "--policy-timeout", "2m")
	cmd.Env = append(os.Environ(), "CLOUDFLARE_API_URL="+api, "CLOUDFLARE_API_TOKEN=bench-token")
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	queries := func() int {
		k := 0
		for _, r := range s.Requests() {
			if q, _ := url.ParseQuery(r.Query); strings.HasSuffix(r.Path, "/logs/audit") && q.Get("cursor") == "" {
				k++
			}
		}
		return k
	}
	waitFor := func(k int) time.Duration {
		for deadline := time.Now().Add(10 * time.Minute); queries() < k; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				check(fmt.Errorf("the daemon made %d reconciles in 10 minutes, not %d", queries(), k))
			}
		}
		return cpuTime(cmd.Process.Pid)
	}
	// The first query starts the second reconcile; the second, the third
	// (the first steady one is done by then).
	t0 := waitFor(2)
	t1 := waitFor(2 + n)
	return t1 - t0, t0
}

// cpuTime is a process's user and system CPU time so far
// (/proc/PID/stat's utime and stime, in clock ticks of 1/100 s).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	// The fields after the command's name in parentheses (which may hold
	// spaces): state is the 3rd field, utime the 14th, stime the 15th.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	check(err)
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	check(err)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// hourly extrapolates an hour at a 1-minute interval: 6 full reads (one
// per 10 minutes) and 54 reused reads with the audit log, 60 full reads
// without.
func hourly(_ float64, full, reused int, audit bool) float64 {
	if !audit {
		return 60 * float64(full)
	}
	return 6*float64(full+reused) + 54*float64(reused)
}

// runDaemon runs `reconciler run --dry-run` for d and returns the requests
// of one full read and of one reused read (the median of each), all the
// requests, and the reconciles counted (by their first member page or
// their audit-log query).
func runDaemon(bin, dir, api string, d time.Duration, audit bool, s *fake.Server) (full, reused int, all float64, reads int, rss int64) {
	cmd := exec.Command(bin, "run", "--repo", dir, "--dry-run", "--listen", "127.0.0.1:0", "--interval", (d / 10).String(),
		"--full-read-interval", (d * 10 / 11).String(), "--audit-log="+strconv.FormatBool(audit), "--cloudflare-rate-limit", "100000",
		"--log-level", "error", "--policy-timeout", "2m")
	cmd.Env = append(os.Environ(), "CLOUDFLARE_API_URL="+api, "CLOUDFLARE_API_TOKEN=bench-token")
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	time.Sleep(d)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	rss = cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	// Split the log into reconciles: one starts at each audit-log query
	// (with the audit log) or each first page of members (without).
	var runs [][]fake.Request
	for _, r := range s.Requests() {
		q, _ := url.ParseQuery(r.Query)
		start := strings.HasSuffix(r.Path, "/logs/audit") && q.Get("cursor") == "" ||
			!audit && strings.HasSuffix(r.Path, "/members") && q.Get("page") == "1"
		if start || len(runs) == 0 {
			runs = append(runs, nil)
		}
		runs[len(runs)-1] = append(runs[len(runs)-1], r)
	}
	var fulls, reuses []int
	for i, run := range runs {
		if i == 0 || i == len(runs)-1 {
			continue // the first read, and one cut short by the stop
		}
		if len(run) > 3 {
			fulls = append(fulls, len(run))
		} else {
			reuses = append(reuses, len(run))
		}
	}
	full = median(fulls)
	if full == 0 && len(runs) > 0 {
		full = len(runs[0]) // no full read but the first: it tells the cost
	}
	if reused = median(reuses); !audit {
		reused = 0
	}
	return full, reused, float64(len(s.Requests())), len(runs), rss
}

func median(xs []int) int {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// reconcile runs `reconciler apply` as a child process and returns its
// JSON output and peak resident set size in KiB.
func reconcile(bin, dir, api, memLimit string, gctrace bool) ([]byte, int64) {
	cmd := exec.Command(bin, "apply", "--repo", dir, "--format", "json", "--cloudflare-rate-limit", "100000", "--allow-mass-removal")
	cmd.Env = append(os.Environ(), "CLOUDFLARE_API_URL="+api, "CLOUDFLARE_API_TOKEN=bench-token")
	if gctrace {
		cmd.Env = append(cmd.Env, "GODEBUG=gctrace=1")
	}
	if memLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+memLimit)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	check(cmd.Run())
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return out.Bytes(), ru.Maxrss
}

// account builds a fake account of n members and a repository declaring
// it, apart from the drift.
func account(work string, n, zones, roles int, drift float64) (*fake.Server, string) {
	// The fake would enforce Cloudflare's 1,200 requests per 5 minutes; lifted here
	// (and in the reconciler) to measure the reconciler itself.
	s := fake.New(fake.Options{Token: "bench-token", Owner: "owner@example.com", RateLimit: 1_000_000})
	s.SetDashboardUser("") // the seeding is not in the audit log: the account is old
	zoneName := func(z int) string { return fmt.Sprintf("zone%03d.example.com", z) }
	for z := range zones {
		s.AddZone(zoneName(z))
	}
	dir := filepath.Join(work, fmt.Sprintf("repo-%d", n))
	check(os.MkdirAll(filepath.Join(dir, "grants"), 0o755))
	var b strings.Builder
	fmt.Fprintf(&b, "providers:\n  prod:\n    provider: cloudflare\n    config: {account_id: %s}\n    reconcile: {protected: [owner@example.com], max_removals: %d}\n", s.AccountID(), n)
	check(os.WriteFile(filepath.Join(dir, "providers.yaml"), []byte(b.String()), 0o644))
	b.Reset()
	b.WriteString("roles:\n")
	roleAccess := make([][]desired.Access, roles)
	// Most roles are a domain-scoped role on one zone; every fifth on two
	// zones (a domain group); every fiftieth an account-scoped role.
	for r := range roles {
		name := domainRoles[r%len(domainRoles)]
		zs := []string{zoneName(r % zones)}
		if r%5 == 0 {
			zs = append(zs, zoneName((r+1)%zones))
		}
		var res []string
		for _, z := range zs {
			res = append(res, strconv.Quote("zone:"+z))
			roleAccess[r] = append(roleAccess[r], desired.Access{Role: name, Resource: desired.Resource{Kind: desired.ZoneName, Zone: z}})
		}
		if r%50 == 0 {
			name = accountRoles[(r/50)%len(accountRoles)]
			res, roleAccess[r] = []string{`"account:*"`}, []desired.Access{{Role: name, Resource: desired.Resource{Kind: desired.WholeAccount}}}
		}
		fmt.Fprintf(&b, "  role-%d: {providers: [prod], inherits: [%q], resources: {allow: [%s]}}\n", r, name, strings.Join(res, ", "))
	}
	check(os.WriteFile(filepath.Join(dir, "roles.yaml"), []byte(b.String()), 0o644))
	// Four members of every `every` differ: one undeclared, one missing,
	// two changed.
	every := int(math.Max(4, math.Round(4/drift)))
	b.Reset()
	for i := range n {
		if i%500 == 0 {
			if b.Len() > 0 {
				check(os.WriteFile(filepath.Join(dir, "grants", fmt.Sprintf("%05d.yaml", i/500)), []byte(b.String()), 0o644))
				b.Reset()
			}
			b.WriteString("grants:\n")
		}
		email := fmt.Sprintf("user%06d@example.com", i)
		r := i % roles
		phase := i % every
		if phase != 1 { // a quarter of the drift: not declared
			fmt.Fprintf(&b, "  - {users: [%s], roles: [role-%d], reason: T-%d}\n", email, r, i)
		}
		if phase == 2 { // a quarter: missing live
			continue
		}
		access := roleAccess[r]
		if phase == 3 || phase == 4 { // half: changed access
			access = roleAccess[(r+1)%roles]
		}
		_, err := s.PutMember(fake.MemberSpec{Email: email, Access: access})
		check(err)
	}
	check(os.WriteFile(filepath.Join(dir, "grants", "last.yaml"), []byte(b.String()), 0o644))
	_, err := s.PutMember(fake.MemberSpec{Email: "owner@example.com", Access: []desired.Access{{Role: "Super Administrator - All Privileges", Resource: desired.Resource{Kind: desired.WholeAccount}}}})
	check(err)
	return s, dir
}

// addUserGroups adds groups user groups of size members each, taken in
// turn from the account's accepted members.
func addUserGroups(s *fake.Server, n, groups, size int, drift float64) {
	every := int(math.Max(4, math.Round(4/drift)))
	next := 0
	for g := range groups {
		spec := fake.UserGroupSpec{Name: fmt.Sprintf("team-%03d", g)}
		for len(spec.Members) < size && next < 10*n {
			i := next % n
			next++
			if i%every == 2 { // missing live: not a member
				continue
			}
			spec.Members = append(spec.Members, fmt.Sprintf("user%06d@example.com", i))
		}
		_, err := s.PutUserGroup(spec)
		check(err)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchdriver:", err)
		os.Exit(1)
	}
}
