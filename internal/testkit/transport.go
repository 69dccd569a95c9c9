package testkit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// Transport reaches h in-process: each request is served by h in its own
// goroutine and the response streams back through a pipe, so a handler
// that stalls, streams, or drops the connection mid-body
// (http.ErrAbortHandler) behaves as over TCP — without sockets, which
// testing/synctest cannot see through.
func Transport(h http.Handler) http.RoundTripper { return handlerTransport{h} }

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil {
		req.Body = http.NoBody
	}
	r := req.Clone(req.Context())
	r.RequestURI = req.URL.RequestURI()
	r.RemoteAddr = "192.0.2.1:49152"
	r.Host = req.URL.Host
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	// A cancelled request ends its body as a closed connection would.
	stop := context.AfterFunc(req.Context(), func() { pw.CloseWithError(req.Context().Err()) })
	go func() {
		defer stop()
		defer func() {
			if p := recover(); p != nil {
				err := io.ErrUnexpectedEOF
				if p != http.ErrAbortHandler {
					err = fmt.Errorf("handler panicked: %v", p)
				}
				w.WriteHeader(http.StatusOK)
				pw.CloseWithError(err)
				return
			}
			w.WriteHeader(http.StatusOK)
			pw.Close()
		}()
		t.h.ServeHTTP(w, r)
	}()
	select {
	case <-w.ready:
	case <-req.Context().Done():
		pr.CloseWithError(req.Context().Err())
		return nil, req.Context().Err()
	}
	res := &http.Response{Status: fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: w.sent, Body: pr, Request: req, ContentLength: -1}
	if n, err := strconv.ParseInt(w.sent.Get("Content-Length"), 10, 64); err == nil {
		res.ContentLength = n
	}
	return res, nil
}

// pipeWriter is the handler's side: headers are sent at the first write.
type pipeWriter struct {
	header, sent http.Header
	pw           *io.PipeWriter
	status       int
	once         sync.Once
	ready        chan struct{}
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(code int) {
	w.once.Do(func() {
		w.status, w.sent = code, w.header.Clone()
		close(w.ready)
	})
}

func (w *pipeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(p)
}

// Flush is a no-op: every write reaches the reader at once.
func (w *pipeWriter) Flush() {}
