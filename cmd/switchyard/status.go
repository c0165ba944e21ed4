package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// printStatus fetches /status from a running switchyard and prints it as
// tables: one line per group, then its replicas and Sentinels.
func printStatus(w io.Writer, admin string) error {
	if !strings.Contains(admin, "://") {
		admin = "http://" + admin
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(strings.TrimSuffix(admin, "/") + "/status")
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status: %s answered %s", admin, resp.Status)
	}
	var st status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return fmt.Errorf("status: decoding the reply: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tLISTEN\tSTATE\tMASTER\tEPOCH\tHELD\tCLIENTS\tPINNED\tBACKEND\tLAST SWITCH")
	for _, g := range st.Groups {
		last := "-"
		if g.LastSwitch != nil {
			last = g.LastSwitch.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%v\t%d\t%d\t%d\t%s\n", g.Name, g.Listen, g.State, orDash(g.Master),
			g.Epoch, g.Held, g.Clients, g.Pinned, g.Backend, last)
	}
	tw.Flush()
	printDraining(w, st)
	for _, g := range st.Groups {
		if g.Reason != "" {
			fmt.Fprintf(w, "\n%s: %s\n", g.Name, g.Reason)
		}
		if len(g.Replicas) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  REPLICA\tHEALTHY\tREADS\tLINK\tLAG BYTES\tFLAGS")
			for _, r := range g.Replicas {
				fmt.Fprintf(tw, "  %s\t%v\t%v\t%v\t%d\t%s\n", r.Addr, r.Healthy, r.InReadSet, r.LinkUp, r.LagBytes, strings.Join(r.Flags, ","))
			}
			tw.Flush()
		}
		if len(g.Sentinels) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  SENTINEL\tREACHABLE\tNAMES\tAGREES\tLAST ERROR")
			for _, s := range g.Sentinels {
				addr := s.Addr
				if len(s.Also) > 0 {
					addr += " (also " + strings.Join(s.Also, ", ") + ")"
				}
				fmt.Fprintf(tw, "  %s\t%v\t%s\t%v\t%s\n", addr, s.Reachable, orDash(s.Master), s.Agrees, orDash(s.LastError))
			}
			tw.Flush()
		}
	}
	return nil
}

// printDraining lists the groups still draining their clients, if any.
func printDraining(w io.Writer, st status) {
	if len(st.Draining) == 0 {
		return
	}
	fmt.Fprintln(w, "\nDraining (replaced or removed by a reload, or stopping):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  GROUP\tLISTEN\tCLIENTS\tPINNED\tBACKEND")
	for _, d := range st.Draining {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\n", d.Name, d.Listen, d.Clients, d.Pinned, d.Backend)
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
