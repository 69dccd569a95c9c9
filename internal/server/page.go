package server

import (
	"embed"
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/daemon"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/report"
)

// The status page (GET /): what a person on call or an auditor wants to
// see, server-rendered with html/template (every value escaped), no
// script, no external resource (a Content-Security-Policy forbids them).

//go:embed page.html
var pageFS embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"when": report.Instant,
	"age": func(t *time.Time, now time.Time) string {
		if t == nil {
			return ""
		}
		d := now.Sub(*t)
		switch {
		case d < time.Hour:
			return fmt.Sprintf("%d min", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%d h", int(d.Hours()))
		}
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	},
	"join":  strings.Join,
	"short": gitsource.Short,
}).ParseFS(pageFS, "page.html"))

type pageData struct {
	Status  daemon.Status
	Details bool
}

// Now is the page's clock: the status's last reconcile (ages are as of
// then, so that a page is reproducible).
func (p pageData) Now() time.Time { return p.Status.LastReconcile }
