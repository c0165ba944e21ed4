package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/pnats/switchyard/proxy"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

type adminServer struct{ srv *http.Server }

func (a *adminServer) Close() {
	if a.srv != nil {
		a.srv.Close()
	}
}

// startAdmin serves /healthz (the process runs), /readyz (a master is
// set) and /metrics on addr; an empty addr turns it off.
func startAdmin(addr string, p *proxy.Server, log *zap.Logger) (*adminServer, error) {
	if addr == "" {
		return &adminServer{}, nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if addr, _, ok := p.Master(); ok {
			fmt.Fprintln(w, "ready: master", addr)
			return
		}
		http.Error(w, "not ready: no verified master", http.StatusServiceUnavailable)
	})
	mux.Handle("/metrics", promhttp.Handler())
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on SWITCHYARD_ADMIN_LISTEN=%q: %w", addr, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", zap.Error(err))
		}
	}()
	log.Info("admin listening", zap.String("addr", l.Addr().String()))
	return &adminServer{srv: hs}, nil
}
