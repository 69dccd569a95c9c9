package gitsource

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchOption configures Watch.
type WatchOption func(*watchOptions)

type watchOptions struct {
	ready func()
}

// OnReady has Watch call ready once every watch is set up, on Watch's
// goroutine before it handles any event: a change made after that is
// noticed. ready is not called when Watch fails before that. Tests wait
// for it rather than sleeping.
func OnReady(ready func()) WatchOption {
	return func(o *watchOptions) { o.ready = ready }
}

// Watch calls trigger when anything under dir changes, debounced, until
// ctx ends. Every directory below dir is watched (new ones too), and so is
// dir's parent, so that replacing dir itself — the atomic symlink swap of
// git-sync sidecars — is noticed and the new tree watched.
func Watch(ctx context.Context, dir string, debounce time.Duration, trigger func(), opts ...WatchOption) error {
	var o watchOptions
	for _, opt := range opts {
		opt(&o)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	parent := filepath.Dir(filepath.Clean(dir))
	if err := w.Add(parent); err != nil {
		return err
	}
	addTree := func() {
		root, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return
		}
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			_ = w.Add(p)
			return nil
		})
	}
	addTree()
	if o.ready != nil {
		o.ready()
	}
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	base := filepath.Base(filepath.Clean(dir))
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			// In the parent, only dir itself matters.
			if filepath.Dir(ev.Name) == parent && filepath.Base(ev.Name) != base && !strings.HasPrefix(filepath.Base(ev.Name), "..") {
				continue
			}
			if timer != nil {
				timer.Stop()
			}
			timer = time.AfterFunc(debounce, func() {
				select {
				case fire <- struct{}{}:
				default:
				}
			})
		case <-fire:
			addTree()
			trigger()
		case <-w.Errors:
			// An overflow loses events: trigger to be safe.
			trigger()
		}
	}
}
