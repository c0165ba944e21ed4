package deploy

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// TestPortsMatch: the container declares exactly the ports the
// configuration listens on, and every probe, Service and NetworkPolicy
// port names one of them.
func TestPortsMatch(t *testing.T) {
	forEachEnv(t, func(t *testing.T, env Environment, m *manifests) {
		d := one[*appsv1.Deployment](t, m)
		if n := len(d.Spec.Template.Spec.Containers); n != 1 {
			t.Fatalf("want one container, have %d", n)
		}
		c := &d.Spec.Template.Spec.Containers[0]

		// The container declares exactly the ports the configuration listens on.
		_, cfg := configOf(t, m)
		want := map[int32]bool{portOf(t, cfg.AdminListen): true}
		for _, g := range cfg.Groups {
			for _, a := range []string{g.Listen, g.ReadListen} {
				if a != "" {
					want[portOf(t, a)] = true
				}
			}
			if g.TLS != nil && g.TLS.Listen != "" {
				want[portOf(t, g.TLS.Listen)] = true
			}
		}
		if f := cfg.SentinelFacade; f != nil {
			if f.Listen != "" {
				want[portOf(t, f.Listen)] = true
			}
			if f.TLS != nil && f.TLS.Listen != "" {
				want[portOf(t, f.TLS.Listen)] = true
			}
		}
		names := map[string]bool{}
		for _, p := range c.Ports {
			if !want[p.ContainerPort] {
				t.Errorf("container port %d (%s) is not in the configuration", p.ContainerPort, p.Name)
			}
			delete(want, p.ContainerPort)
			if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
				t.Errorf("container port name %q: %v", p.Name, errs)
			}
			if names[p.Name] {
				t.Errorf("container port name %q used twice", p.Name)
			}
			names[p.Name] = true
		}
		for p := range want {
			t.Errorf("the configuration listens on %d but the container does not declare it", p)
		}

		for _, pr := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{
			{"readiness", c.ReadinessProbe, "/readyz"},
			{"liveness", c.LivenessProbe, "/healthz"},
		} {
			if pr.probe == nil || pr.probe.HTTPGet == nil {
				t.Errorf("no %s probe over HTTP", pr.name)
				continue
			}
			if pr.probe.HTTPGet.Path != pr.path {
				t.Errorf("%s probe path %q, want %q", pr.name, pr.probe.HTTPGet.Path, pr.path)
			}
			cp := containerPort(c, pr.probe.HTTPGet.Port)
			if cp == nil || cp.ContainerPort != portOf(t, cfg.AdminListen) {
				t.Errorf("%s probe port %s is not the admin port %s", pr.name, pr.probe.HTTPGet.Port.String(), cfg.AdminListen)
			}
		}

		for _, s := range all[*corev1.Service](m) {
			for _, sp := range s.Spec.Ports {
				cp := containerPort(c, sp.TargetPort)
				if cp == nil {
					t.Errorf("Service %s port %s: targetPort %s is not a container port", s.Name, sp.Name, sp.TargetPort.String())
					continue
				}
				if sp.Protocol != cp.Protocol {
					t.Errorf("Service %s port %s: protocol %s, container %s", s.Name, sp.Name, sp.Protocol, cp.Protocol)
				}
				if errs := validation.IsValidPortName(sp.Name); len(errs) > 0 {
					t.Errorf("Service %s port name %q: %v", s.Name, sp.Name, errs)
				}
			}
		}

		np := one[*networkingv1.NetworkPolicy](t, m)
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port == nil || containerPort(c, *p.Port) == nil {
					t.Errorf("NetworkPolicy allows port %v, which the container does not serve", p.Port)
				}
			}
		}
		// Every client port of the Service is let in by the NetworkPolicy.
		clients := one[*corev1.Service](t, &manifests{env: m.env, objects: withoutMetrics(m)})
		for _, sp := range clients.Spec.Ports {
			if !allowed(np, c, sp.TargetPort) {
				t.Errorf("Service port %s is not allowed by the NetworkPolicy", sp.Name)
			}
		}
	})
}

func withoutMetrics(m *manifests) []object {
	var out []object
	for _, s := range all[*corev1.Service](m) {
		if s.Labels["app.kubernetes.io/component"] != "metrics" {
			out = append(out, s)
		}
	}
	return out
}

func allowed(np *networkingv1.NetworkPolicy, c *corev1.Container, target intstr.IntOrString) bool {
	want := containerPort(c, target)
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port != nil && containerPort(c, *p.Port) == want {
				return true
			}
		}
	}
	return false
}
