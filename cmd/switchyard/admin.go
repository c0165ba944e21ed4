package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

type adminServer struct{ srv *http.Server }

func (a *adminServer) Close() {
	if a.srv != nil {
		a.srv.Close()
	}
}

// startAdmin serves /healthz (the process runs), /readyz (every group has
// a master) and /metrics on addr; an empty addr turns it off.
func startAdmin(addr string, groups []*group, log *zap.Logger) (*adminServer, error) {
	if addr == "" {
		return &adminServer{}, nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		// Ready once every group has a verified master.
		for _, g := range groups {
			if _, _, ok := g.srv.Master(); !ok {
				http.Error(w, fmt.Sprintf("not ready: group %s has no verified master", g.cfg.Name), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
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
