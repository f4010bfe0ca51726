package awsfake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"
)

type secretVersion struct {
	ID      string
	Value   string
	Stages  []string
	Created time.Time
}

type secret struct {
	name, arn, description string
	created, changed       time.Time
	deleted                time.Time        // scheduled for deletion (recoverable) when set
	versions               []*secretVersion // in creation order
}

func (s *secret) version(id string) *secretVersion {
	for _, v := range s.versions {
		if v.ID == id {
			return v
		}
	}
	return nil
}

func (s *secret) staged(stage string) *secretVersion {
	for _, v := range s.versions {
		if slices.Contains(v.Stages, stage) {
			return v
		}
	}
	return nil
}

// attach moves stage to v, from whichever version holds it; moving AWSCURRENT moves
// AWSPREVIOUS to the version it came from, as the service does.
func (s *secret) attach(stage string, v *secretVersion) {
	from := s.staged(stage)
	if from == v {
		return
	}
	if from != nil {
		from.Stages = slices.DeleteFunc(from.Stages, func(x string) bool { return x == stage })
	}
	v.Stages = append(v.Stages, stage)
	if stage == "AWSCURRENT" && from != nil {
		s.attach("AWSPREVIOUS", from)
	}
}

func uuid() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func (f *Server) secretsManager(op string, body []byte) (any, error) {
	var in struct {
		Name, SecretId, SecretString, ClientRequestToken, Description string
		VersionId, VersionStage, MoveToVersionId, RemoveFromVersionId string
		VersionStages                                                 []string
		IncludeDeprecated, ForceDeleteWithoutRecovery                 bool
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, errf(400, "InvalidParameterException", "malformed request: %v", err)
	}
	if op == "CreateSecret" {
		if in.Name == "" {
			return nil, errf(400, "InvalidParameterException", "You must provide a value for the Name parameter.")
		}
		if f.secrets[in.Name] != nil {
			return nil, errf(400, "ResourceExistsException", "The operation failed because the secret %s already exists.", in.Name)
		}
		now := f.now()
		s := &secret{name: in.Name, arn: "arn:aws:secretsmanager:" + Region + ":000000000000:secret:" + in.Name + "-AbCdEf",
			description: in.Description, created: now, changed: now}
		f.secrets[in.Name] = s
		out := map[string]any{"ARN": s.arn, "Name": s.name}
		if in.SecretString != "" {
			id := in.ClientRequestToken
			if id == "" {
				id = uuid()
			}
			s.versions = append(s.versions, &secretVersion{ID: id, Value: in.SecretString, Stages: []string{"AWSCURRENT"}, Created: now})
			out["VersionId"] = id
		}
		return out, nil
	}
	s := f.secrets[in.SecretId]
	if s == nil {
		for _, x := range f.secrets {
			if x.arn == in.SecretId {
				s = x
			}
		}
	}
	if s == nil {
		return nil, errf(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
	}
	if !s.deleted.IsZero() && op != "DescribeSecret" && op != "DeleteSecret" {
		return nil, errf(400, "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
	}
	switch op {
	case "PutSecretValue":
		if in.SecretString == "" {
			return nil, errf(400, "InvalidParameterException", "You must provide either SecretString or SecretBinary.")
		}
		id := in.ClientRequestToken
		if id == "" {
			id = uuid()
		}
		stages := in.VersionStages
		if len(stages) == 0 {
			stages = []string{"AWSCURRENT"}
		}
		if v := s.version(id); v != nil { // idempotent retry, or a token reused for another value
			if v.Value != in.SecretString {
				return nil, errf(400, "ResourceExistsException", "A resource with the ID you requested already exists.")
			}
			return map[string]any{"ARN": s.arn, "Name": s.name, "VersionId": v.ID, "VersionStages": v.Stages}, nil
		}
		v := &secretVersion{ID: id, Value: in.SecretString, Created: f.now()}
		s.versions = append(s.versions, v)
		for _, st := range stages {
			s.attach(st, v)
		}
		s.changed = v.Created
		return map[string]any{"ARN": s.arn, "Name": s.name, "VersionId": v.ID, "VersionStages": v.Stages}, nil
	case "GetSecretValue":
		var v *secretVersion
		switch {
		case in.VersionId != "":
			v = s.version(in.VersionId)
			if v != nil && in.VersionStage != "" && !slices.Contains(v.Stages, in.VersionStage) {
				v = nil
			}
		case in.VersionStage != "":
			v = s.staged(in.VersionStage)
		default:
			v = s.staged("AWSCURRENT")
		}
		if v == nil {
			return nil, errf(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s, staging label: %s", in.VersionId, in.VersionStage)
		}
		return map[string]any{"ARN": s.arn, "Name": s.name, "VersionId": v.ID, "SecretString": v.Value,
			"VersionStages": v.Stages, "CreatedDate": epoch(v.Created)}, nil
	case "DescribeSecret":
		stages := map[string][]string{}
		for _, v := range s.versions {
			if len(v.Stages) > 0 {
				stages[v.ID] = v.Stages
			}
		}
		out := map[string]any{"ARN": s.arn, "Name": s.name, "Description": s.description, "CreatedDate": epoch(s.created),
			"LastChangedDate": epoch(s.changed), "VersionIdsToStages": stages}
		if !s.deleted.IsZero() {
			out["DeletedDate"] = epoch(s.deleted)
		}
		return out, nil
	case "ListSecretVersionIds":
		var vs []map[string]any
		for _, v := range s.versions {
			if len(v.Stages) > 0 || in.IncludeDeprecated {
				vs = append(vs, map[string]any{"VersionId": v.ID, "VersionStages": v.Stages, "CreatedDate": epoch(v.Created)})
			}
		}
		sort.SliceStable(vs, func(i, j int) bool { return vs[i]["CreatedDate"].(float64) > vs[j]["CreatedDate"].(float64) })
		return map[string]any{"ARN": s.arn, "Name": s.name, "Versions": vs}, nil
	case "UpdateSecretVersionStage":
		if in.VersionStage == "" {
			return nil, errf(400, "InvalidParameterException", "You must provide a value for the VersionStage parameter.")
		}
		holder := s.staged(in.VersionStage)
		if in.RemoveFromVersionId != "" && (holder == nil || holder.ID != in.RemoveFromVersionId) {
			return nil, errf(400, "InvalidParameterException", "The staging label %s is not attached to version %s; it can't be removed from it.", in.VersionStage, in.RemoveFromVersionId)
		}
		if in.MoveToVersionId == "" {
			if in.RemoveFromVersionId == "" {
				return nil, errf(400, "InvalidParameterException", "You must specify MoveToVersionId or RemoveFromVersionId.")
			}
			if in.VersionStage == "AWSCURRENT" {
				return nil, errf(400, "InvalidParameterException", "You can only move staging label AWSCURRENT to a different secret version. It can't be completely removed.")
			}
			holder.Stages = slices.DeleteFunc(holder.Stages, func(x string) bool { return x == in.VersionStage })
			s.changed = f.now()
			return map[string]any{"ARN": s.arn, "Name": s.name}, nil
		}
		to := s.version(in.MoveToVersionId)
		if to == nil {
			return nil, errf(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret version %s.", in.MoveToVersionId)
		}
		if holder != nil && holder != to && in.RemoveFromVersionId == "" {
			return nil, errf(400, "InvalidParameterException", "The staging label %s is currently attached to version %s. To move it, specify that version in RemoveFromVersionId.", in.VersionStage, holder.ID)
		}
		s.attach(in.VersionStage, to)
		s.changed = f.now()
		return map[string]any{"ARN": s.arn, "Name": s.name}, nil
	case "UpdateSecret":
		if in.SecretString != "" {
			return nil, errf(400, "InvalidParameterException", "the fake's UpdateSecret changes the description only")
		}
		s.description = in.Description
		s.changed = f.now()
		return map[string]any{"ARN": s.arn, "Name": s.name}, nil
	case "DeleteSecret":
		if in.ForceDeleteWithoutRecovery {
			delete(f.secrets, s.name)
			return map[string]any{"ARN": s.arn, "Name": s.name, "DeletionDate": epoch(f.now())}, nil
		}
		s.deleted = f.now()
		return map[string]any{"ARN": s.arn, "Name": s.name, "DeletionDate": epoch(s.deleted.Add(30 * 24 * time.Hour))}, nil
	}
	return nil, errf(400, "UnknownOperationException", "the fake does not serve secretsmanager %s", op)
}
