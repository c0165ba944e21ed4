package deploy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// TestDeploymentIsSafe: enough instances, spread, rollouts that keep
// capacity, a grace period longer than the drain, a restricted pod.
func TestDeploymentIsSafe(t *testing.T) {
	forEachEnv(t, func(t *testing.T, env Environment, m *manifests) {
		d := one[*appsv1.Deployment](t, m)
		spec := d.Spec.Template.Spec

		// At least two instances, always.
		hpas := all[*autoscalingv2.HorizontalPodAutoscaler](m)
		switch {
		case len(hpas) == 1:
			if d.Spec.Replicas != nil {
				t.Error("with an HPA the Deployment must leave replicas unset, or every upgrade resets the scale")
			}
			if h := hpas[0]; h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
				t.Errorf("HPA min %s max %d: want at least 2", deref(h.Spec.MinReplicas), h.Spec.MaxReplicas)
			}
		case d.Spec.Replicas == nil || *d.Spec.Replicas < 2:
			t.Errorf("replicas %s: want at least 2", deref(d.Spec.Replicas))
		}

		// Spread over nodes.
		spread := false
		for _, c := range spec.TopologySpreadConstraints {
			spread = spread || c.TopologyKey == "kubernetes.io/hostname"
		}
		if !spread {
			t.Error("no topologySpreadConstraint on kubernetes.io/hostname")
		}

		// Rollouts never lose capacity; the PDB lets a drain take one at a time.
		ru := d.Spec.Strategy.RollingUpdate
		if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil ||
			ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge == nil || ru.MaxSurge.IntValue() < 1 {
			t.Errorf("strategy %+v: want RollingUpdate with maxSurge >= 1 and maxUnavailable 0", d.Spec.Strategy)
		}
		pdb := one[*policyv1.PodDisruptionBudget](t, m)
		if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
			t.Error("PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
		}

		// The pod outlives the drain.
		_, cfg := configOf(t, m)
		drain := 10 * time.Second
		if cfg.DrainTimeout != "" {
			var err error
			if drain, err = time.ParseDuration(cfg.DrainTimeout); err != nil {
				t.Fatalf("drain_timeout %q: %v", cfg.DrainTimeout, err)
			}
		}
		c := spec.Containers[0]
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			drain += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
		if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= drain {
			t.Errorf("terminationGracePeriodSeconds %s: want more than drain_timeout plus preStop, %v", deref(g), drain)
		}

		// Restricted: non-root, read-only root, no capabilities, RuntimeDefault.
		psc, sc := spec.SecurityContext, c.SecurityContext
		if psc == nil || sc == nil {
			t.Fatal("pod or container securityContext missing")
		}
		if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Error("pod must run as a non-root user")
		}
		if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Error("pod seccompProfile must be RuntimeDefault")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("readOnlyRootFilesystem must be true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation must be false")
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Add) > 0 || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			t.Errorf("capabilities %+v: want drop [ALL], add none", sc.Capabilities)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Error("the service account token must not be mounted: Switchyard never calls the API")
		}

		// Resources.
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("resources %+v: want CPU and memory requests and a memory limit", c.Resources)
		}

		// A configuration change rolls the pods.
		if d.Spec.Template.Annotations["checksum/config"] == "" {
			t.Error("no checksum/config annotation on the pod template")
		}
		mounted := false
		for _, vm := range c.VolumeMounts {
			if vm.Name == "config" && strings.HasPrefix(c.Args[len(c.Args)-1], vm.MountPath+"/") {
				mounted = true
			}
		}
		if !mounted {
			t.Errorf("args %v: the -config file is not in the config volume", c.Args)
		}
	})
}

// TestEnvironments checks what the connection guide's tables say: the
// shared IP with a port per group in production; internal only elsewhere;
// platform-kv alone in development.
func TestEnvironments(t *testing.T) {
	wantGroups := map[string]map[string]int32{
		"production":  {"platform-kv": 6379, "cache-kv": 6380},
		"staging":     {"platform-kv": 6379, "cache-kv": 6380},
		"development": {"platform-kv": 6379},
		"tls-example": {"platform-kv": 6379, "cache-kv": 6380},
	}
	forEachEnv(t, func(t *testing.T, env Environment, m *manifests) {
		want, ok := wantGroups[env.Name]
		if !ok {
			t.Fatalf("no expectation for environment %s", env.Name)
		}
		_, cfg := configOf(t, m)
		have := map[string]int32{}
		for _, g := range cfg.Groups {
			if g.Listen != "" {
				have[g.Name] = portOf(t, g.Listen)
			}
		}
		if fmt.Sprint(have) != fmt.Sprint(want) {
			t.Errorf("groups and ports %v, want %v", have, want)
		}
		svc := one[*corev1.Service](t, &manifests{env: m.env, objects: withoutMetrics(m)})
		for name, port := range want {
			sp := servicePort(svc, name)
			if sp == nil || sp.Port != port {
				t.Errorf("Service %s: group %s should be on port %d, have %+v", svc.Name, name, port, sp)
			}
		}
		public := env.Name == "production" || env.Name == "tls-example"
		if !public {
			if svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Annotations) > 0 {
				t.Errorf("%s must be internal only: type %s, annotations %v", env.Name, svc.Spec.Type, svc.Annotations)
			}
			return
		}
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			t.Errorf("production Service type %s, want LoadBalancer", svc.Spec.Type)
		}
		if ip := svc.Annotations["metallb.universe.tf/loadBalancerIPs"]; ip != "103.110.174.22" {
			t.Errorf("metallb.universe.tf/loadBalancerIPs = %q, want the shared IP 103.110.174.22", ip)
		}
		if svc.Annotations["metallb.universe.tf/allow-shared-ip"] == "" {
			t.Error("metallb.universe.tf/allow-shared-ip is not set: the IP could not be shared")
		}
		if svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster {
			t.Errorf("externalTrafficPolicy %q: MetalLB shares an IP between Cluster-policy Services", svc.Spec.ExternalTrafficPolicy)
		}
		if servicePort(svc, "admin") != nil {
			t.Error("the admin port must not be on the shared IP")
		}
		if env.Name != "production" {
			return
		}
		// docs/connecting.md sends Sentinel-aware clients to the facade
		// on the shared IP.
		f := cfg.SentinelFacade
		if f == nil || portOf(t, f.Listen) != 26379 || f.Announce != "103.110.174.22:26379" {
			t.Errorf("sentinel_facade %+v: want listen on 26379, announced as 103.110.174.22:26379", f)
		}
		if sp := servicePort(svc, "sentinel"); sp == nil || sp.Port != 26379 {
			t.Errorf("Service %s: the Sentinel facade should be on port 26379, have %+v", svc.Name, sp)
		}
	})
}

// TestTLSExample checks that the certificate cert-manager writes is the
// one the configuration reads.
func TestTLSExample(t *testing.T) {
	var env Environment
	for _, e := range Environments {
		if e.Name == "tls-example" {
			env = e
		}
	}
	m := renderEnv(t, env)
	cert := one[*Certificate](t, m)
	d := one[*appsv1.Deployment](t, m)
	var mountPath string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == cert.Spec.SecretName {
			for _, vm := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
				if vm.Name == v.Name {
					mountPath = vm.MountPath
				}
			}
		}
	}
	if mountPath == "" {
		t.Fatalf("the Certificate's Secret %s is not mounted", cert.Spec.SecretName)
	}
	text, _ := configOf(t, m)
	for _, f := range []string{"tls.crt", "tls.key"} {
		if !strings.Contains(text, mountPath+"/"+f) {
			t.Errorf("the configuration does not read %s/%s", mountPath, f)
		}
	}
	for _, name := range []string{"platform-kv.pnats.cloud", "cache-kv.pnats.cloud"} {
		if !strings.Contains(strings.Join(cert.Spec.DNSNames, " "), name) {
			t.Errorf("the Certificate does not name %s", name)
		}
	}
}
