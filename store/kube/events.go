package kube

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sigil-dna/keysync/store"
)

// EventComponent is the source of the Events keysync records.
const EventComponent = "keysync"

// RecordEvent implements store.EventRecorder: a core/v1 Event on the Secret, as
// `kubectl events --for secret/NAME` and Argo CD show them. It needs `create` on events in the
// Secret's namespace (the rotator's Role grants that and nothing more about events).
func (s *Store) RecordEvent(ctx context.Context, e store.Event) error {
	sec, err := s.client.GetSecret(ctx, s.cfg.Namespace, s.cfg.Name)
	if err != nil {
		return fmt.Errorf("kube event on %s: reading the Secret: %w", s, err)
	}
	now := metav1.NewTime(time.Now())
	typ := corev1.EventTypeNormal
	if e.Warning {
		typ = corev1.EventTypeWarning
	}
	host, _ := os.Hostname()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			// The name client-go's recorder uses: the object's name and a unique suffix.
			Name:      s.cfg.Name + "." + strconv.FormatInt(now.UnixNano(), 16),
			Namespace: s.cfg.Namespace,
		},
		InvolvedObject: corev1.ObjectReference{Kind: "Secret", APIVersion: "v1", Namespace: s.cfg.Namespace, Name: s.cfg.Name,
			UID: sec.UID, ResourceVersion: sec.ResourceVersion},
		Reason: e.Reason, Message: e.Message, Type: typ,
		Source:         corev1.EventSource{Component: EventComponent, Host: host},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "sigil-dna.io/keysync", ReportingInstance: host,
	}
	if _, err := s.client.CreateEvent(ctx, ev); err != nil {
		return fmt.Errorf("kube event on %s: %w", s, err)
	}
	return nil
}
