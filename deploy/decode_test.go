package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// object is any manifest the chart or the examples may contain.
type object interface {
	GetName() string
	GetLabels() map[string]string
}

// kinds maps apiVersion/kind to a new typed object. A kind that is not
// here fails the tests: every manifest must decode into a real type.
var kinds = map[string]func() object{
	"apps/v1/Deployment":                      func() object { return &appsv1.Deployment{} },
	"v1/Service":                              func() object { return &corev1.Service{} },
	"v1/ConfigMap":                            func() object { return &corev1.ConfigMap{} },
	"v1/ServiceAccount":                       func() object { return &corev1.ServiceAccount{} },
	"v1/Secret":                               func() object { return &corev1.Secret{} },
	"policy/v1/PodDisruptionBudget":           func() object { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() object { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() object { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() object { return &monitoringv1.ServiceMonitor{} },
	"cert-manager.io/v1/Certificate":          func() object { return &Certificate{} },
}

// Certificate is the part of cert-manager's Certificate (cert-manager.io/v1)
// the chart uses. Its own module is far larger than the few fields needed;
// a field the chart sets and this type lacks fails strict decoding, so
// extend it from cert-manager's API reference when the chart grows.
type Certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              CertificateSpec `json:"spec"`
}

// CertificateSpec is cert-manager's CertificateSpec, in part.
type CertificateSpec struct {
	SecretName  string                 `json:"secretName"`
	CommonName  string                 `json:"commonName,omitempty"`
	Duration    *metav1.Duration       `json:"duration,omitempty"`
	RenewBefore *metav1.Duration       `json:"renewBefore,omitempty"`
	DNSNames    []string               `json:"dnsNames,omitempty"`
	IPAddresses []string               `json:"ipAddresses,omitempty"`
	PrivateKey  *CertificatePrivateKey `json:"privateKey,omitempty"`
	Usages      []string               `json:"usages,omitempty"`
	IssuerRef   IssuerReference        `json:"issuerRef"`
}

// CertificatePrivateKey is cert-manager's CertificatePrivateKey.
type CertificatePrivateKey struct {
	RotationPolicy string `json:"rotationPolicy,omitempty"`
	Encoding       string `json:"encoding,omitempty"`
	Algorithm      string `json:"algorithm,omitempty"`
	Size           int    `json:"size,omitempty"`
}

// IssuerReference is cert-manager's ObjectReference to an issuer.
type IssuerReference struct {
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"`
	Group string `json:"group,omitempty"`
}

// manifests holds one environment's decoded objects by kind.
type manifests struct {
	env     string
	objects []object
}

// decodeStrict splits a YAML stream into documents and decodes each into
// its typed object, rejecting unknown and duplicate fields.
func decodeStrict(data []byte) ([]object, error) {
	var out []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("type of document: %w", err)
		}
		newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			return nil, fmt.Errorf("unknown kind %s/%s: add its type to kinds", tm.APIVersion, tm.Kind)
		}
		obj := newObj()
		if err := unmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("%s: %w", tm.Kind, err)
		}
		if obj.GetName() == "" {
			return nil, fmt.Errorf("%s without a name", tm.Kind)
		}
		out = append(out, obj)
	}
}

// unmarshalStrict decodes YAML as the API server does in strict mode:
// duplicate keys, unknown fields and fields in the wrong case are errors.
// (sigs.k8s.io/yaml.UnmarshalStrict alone goes through encoding/json,
// which matches field names case-insensitively, so "targetport" would
// pass for "targetPort".)
func unmarshalStrict(doc []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := json.UnmarshalStrict(j, obj, json.DisallowDuplicateFields, json.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// renderEnv renders env and decodes every manifest strictly.
func renderEnv(t *testing.T, env Environment) *manifests {
	t.Helper()
	files, err := Render(ChartDir, env)
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{env: env.Name}
	for _, name := range SortedKeys(files) {
		objs, err := decodeStrict([]byte(files[name]))
		if err != nil {
			t.Fatalf("%s: %s: %v", env.Name, name, err)
		}
		m.objects = append(m.objects, objs...)
	}
	return m
}

// all returns the objects of type T.
func all[T object](m *manifests) []T {
	var out []T
	for _, o := range m.objects {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// one returns the single object of type T, failing if there is not
// exactly one.
func one[T object](t *testing.T, m *manifests) T {
	t.Helper()
	objs := all[T](m)
	if len(objs) != 1 {
		var zero T
		t.Fatalf("%s: want one %T, have %d", m.env, zero, len(objs))
	}
	return objs[0]
}
