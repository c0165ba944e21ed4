package deploy

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// forEachEnv runs f on every environment's decoded manifests.
func forEachEnv(t *testing.T, f func(t *testing.T, env Environment, m *manifests)) {
	for _, env := range Environments {
		t.Run(env.Name, func(t *testing.T) {
			f(t, env, renderEnv(t, env))
		})
	}
}

func TestManifestsDecodeStrictly(t *testing.T) {
	forEachEnv(t, func(t *testing.T, env Environment, m *manifests) {
		have := map[string]int{}
		for _, o := range m.objects {
			have[fmt.Sprintf("%T", o)]++
		}
		for _, want := range []string{
			"*v1.Deployment", "*v1.ConfigMap", "*v1.ServiceAccount", "*v1.PodDisruptionBudget",
			"*v1.NetworkPolicy", "*v1.ServiceMonitor",
		} {
			if have[want] != 1 {
				t.Errorf("want one %s, have %d (all: %v)", want, have[want], have)
			}
		}
		if have["*v1.Service"] != 2 {
			t.Errorf("want two Services (clients, metrics), have %d", have["*v1.Service"])
		}
	})
}

// TestDecodeStrictRejectsUnknownFields proves the strict decoding the
// other tests rely on: a misspelt field is an error, not ignored.
func TestDecodeStrictRejectsUnknownFields(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 1, targetport: 1}]}\n",
		"apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: x}\nspec: {secretName: s, issuerRef: {name: i}, dnsName: [a]}\n",
		"apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {selector: {}, endpoint: []}\n",
		"apiVersion: example.com/v1\nkind: Unknown\nmetadata: {name: x}\n",
	} {
		if _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("decoded without error:\n%s", doc)
		}
	}
}

func matches(t *testing.T, what string, sel *metav1.LabelSelector, podLabels map[string]string) {
	t.Helper()
	if sel == nil {
		t.Errorf("%s: no selector", what)
		return
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if s.Empty() {
		t.Errorf("%s: empty selector selects every pod", what)
	}
	if !s.Matches(labels.Set(podLabels)) {
		t.Errorf("%s: selector %v does not match the pod labels %v", what, s, podLabels)
	}
}

func TestSelectorsMatchPodLabels(t *testing.T) {
	forEachEnv(t, func(t *testing.T, env Environment, m *manifests) {
		d := one[*appsv1.Deployment](t, m)
		pod := d.Spec.Template.Labels
		matches(t, "Deployment", d.Spec.Selector, pod)
		for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
			matches(t, "topologySpreadConstraint "+c.TopologyKey, c.LabelSelector, pod)
		}
		matches(t, "PodDisruptionBudget", one[*policyv1.PodDisruptionBudget](t, m).Spec.Selector, pod)
		matches(t, "NetworkPolicy", &one[*networkingv1.NetworkPolicy](t, m).Spec.PodSelector, pod)
		for _, s := range all[*corev1.Service](m) {
			matches(t, "Service "+s.Name, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, pod)
		}
		for _, h := range all[*autoscalingv2.HorizontalPodAutoscaler](m) {
			ref := h.Spec.ScaleTargetRef
			if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
				t.Errorf("HPA targets %s %s %q, want apps/v1 Deployment %q", ref.APIVersion, ref.Kind, ref.Name, d.Name)
			}
		}
		sm := one[*monitoringv1.ServiceMonitor](t, m)
		var scraped []*corev1.Service
		for _, s := range all[*corev1.Service](m) {
			sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
			if err != nil {
				t.Fatal(err)
			}
			if sel.Matches(labels.Set(s.Labels)) {
				scraped = append(scraped, s)
			}
		}
		if len(scraped) != 1 || scraped[0].Spec.Type != corev1.ServiceTypeClusterIP {
			t.Fatalf("ServiceMonitor should select exactly the ClusterIP metrics Service, selects %d", len(scraped))
		}
		if ns := sm.Spec.NamespaceSelector.MatchNames; len(ns) != 1 || ns[0] != Release.Namespace {
			t.Errorf("ServiceMonitor namespaceSelector %v, want [%s]", ns, Release.Namespace)
		}
		for _, ep := range sm.Spec.Endpoints {
			if servicePort(scraped[0], ep.Port) == nil {
				t.Errorf("ServiceMonitor endpoint port %q is not a port of Service %s", ep.Port, scraped[0].Name)
			}
			if ep.Path != "/metrics" {
				t.Errorf("ServiceMonitor path %q, want /metrics", ep.Path)
			}
		}
	})
}

// deref prints an optional number.
func deref[N int32 | int64](p *N) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func servicePort(s *corev1.Service, name string) *corev1.ServicePort {
	for i := range s.Spec.Ports {
		if s.Spec.Ports[i].Name == name {
			return &s.Spec.Ports[i]
		}
	}
	return nil
}

// containerPort resolves a named or numbered port against the container.
func containerPort(c *corev1.Container, p intstr.IntOrString) *corev1.ContainerPort {
	for i := range c.Ports {
		cp := &c.Ports[i]
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp
		}
	}
	return nil
}

// proxyConfig is the part of Switchyard's configuration the chart reads.
type proxyConfig struct {
	AdminListen  string `json:"admin_listen"`
	DrainTimeout string `json:"drain_timeout"`
	Groups       []struct {
		Name       string `json:"name"`
		Listen     string `json:"listen"`
		ReadListen string `json:"read_listen"`
		TLS        *struct {
			Listen string `json:"listen"`
		} `json:"tls"`
	} `json:"groups"`
	SentinelFacade *struct {
		Listen   string `json:"listen"`
		Announce string `json:"announce"`
		TLS      *struct {
			Listen string `json:"listen"`
		} `json:"tls"`
	} `json:"sentinel_facade"`
}

func configOf(t *testing.T, m *manifests) (string, proxyConfig) {
	t.Helper()
	cm := one[*corev1.ConfigMap](t, m)
	text, ok := cm.Data["switchyard.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no switchyard.yaml", cm.Name)
	}
	var c proxyConfig
	if err := yaml.Unmarshal([]byte(text), &c); err != nil {
		t.Fatalf("ConfigMap switchyard.yaml: %v", err)
	}
	return text, c
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	n, err := strconv.Atoi(addr[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("address %q has no port", addr)
	}
	return int32(n)
}
