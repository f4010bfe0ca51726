package awsfake

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

type paramVersion struct {
	Value, Type, Description, KeyID string
	Version                         int64
	Modified                        time.Time
}

type parameter struct{ versions []paramVersion } // index i is version i+1

func (p *parameter) latest() paramVersion { return p.versions[len(p.versions)-1] }

type paramOut struct {
	Name             string
	Type             string
	Value            string
	Version          int64
	LastModifiedDate float64
	ARN              string
	DataType         string
	Selector         string `json:",omitempty"`
}

type historyOut struct {
	Name, Type, KeyId, Description, Value string
	Version                               int64
	LastModifiedDate                      float64
	LastModifiedUser                      string
	Labels                                []string
	Tier, DataType                        string
}

// ciphertext stands in for what SSM returns for a SecureString read without decryption:
// an opaque blob that is not the value.
func ciphertext(v paramVersion) string {
	sum := sha256.Sum256([]byte("awsfake kms " + v.Value))
	return base64.StdEncoding.EncodeToString(append([]byte("AQICAHfake"), sum[:]...))
}

func (f *Server) ssm(op string, body []byte) (any, error) {
	var in struct {
		Name, Value, Type, Description, KeyId, NextToken string
		Overwrite, WithDecryption                        bool
		MaxResults                                       int
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, errf(400, "ValidationException", "malformed request: %v", err)
	}
	if in.Name == "" {
		return nil, errf(400, "ValidationException", "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null")
	}
	name, selector, _ := strings.Cut(in.Name, ":")
	p := f.params[name]
	arn := "arn:aws:ssm:" + Region + ":000000000000:parameter/" + strings.TrimPrefix(name, "/")
	notFound := errf(400, "ParameterNotFound", "Parameter %s not found.", name)
	switch op {
	case "GetParameter":
		if p == nil {
			return nil, notFound
		}
		v := p.latest()
		if selector != "" {
			n, err := strconv.ParseInt(selector, 10, 64)
			if err != nil || n < 1 || n > int64(len(p.versions)) {
				return nil, errf(400, "ParameterVersionNotFound", "Systems Manager could not find version %s of %s.", selector, name)
			}
			v = p.versions[n-1]
			selector = ":" + selector
		}
		value := v.Value
		if v.Type == "SecureString" && !in.WithDecryption {
			value = ciphertext(v)
		}
		return map[string]any{"Parameter": paramOut{name, v.Type, value, v.Version, epoch(v.Modified), arn, "text", selector}}, nil
	case "PutParameter":
		if in.Value == "" {
			return nil, errf(400, "ValidationException", "1 validation error detected: Value '' at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1")
		}
		if p != nil && !in.Overwrite {
			return nil, errf(400, "ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")
		}
		if p == nil {
			p = &parameter{}
			f.params[name] = p
		}
		typ := in.Type
		if typ == "" && len(p.versions) > 0 {
			typ = p.latest().Type
		}
		v := paramVersion{Value: in.Value, Type: typ, Description: in.Description, KeyID: in.KeyId,
			Version: int64(len(p.versions) + 1), Modified: f.now()}
		if typ == "SecureString" && v.KeyID == "" {
			v.KeyID = "alias/aws/ssm"
		}
		p.versions = append(p.versions, v)
		return map[string]any{"Version": v.Version, "Tier": "Standard"}, nil
	case "GetParameterHistory":
		if p == nil {
			return nil, notFound
		}
		max := in.MaxResults
		if max <= 0 || max > 50 {
			max = 50
		}
		start, _ := strconv.Atoi(in.NextToken)
		out := map[string]any{}
		var hs []historyOut
		for i := start; i < len(p.versions) && len(hs) < max; i++ {
			v := p.versions[i]
			value := v.Value
			if v.Type == "SecureString" && !in.WithDecryption {
				value = ciphertext(v)
			}
			hs = append(hs, historyOut{name, v.Type, v.KeyID, v.Description, value, v.Version, epoch(v.Modified),
				"arn:aws:iam::000000000000:user/keysync-test", []string{}, "Standard", "text"})
			if i+1 < len(p.versions) && len(hs) == max {
				out["NextToken"] = strconv.Itoa(i + 1)
			}
		}
		out["Parameters"] = hs
		return out, nil
	case "DeleteParameter":
		if p == nil {
			return nil, notFound
		}
		delete(f.params, name)
		return map[string]any{}, nil
	}
	return nil, errf(400, "UnknownOperationException", "the fake does not serve ssm %s", op)
}
