package node

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/registry"
	"github.com/moatfn/moat/internal/sign"
)

// Checks is what the node found about a deployed version; it is kept with
// the version in the registry.
type Checks struct {
	// SignedBy is the id of the trusted key that signed the version.
	SignedBy string `json:"signed_by,omitempty"`
}

// deployChecks vets a deploy before it is stored: its signature when the
// node requires one, then readies its KV buckets.
func (n *Node) deployChecks(caps *capabilities) func(ctx context.Context, m *manifest.Manifest, up *registry.Upload) (json.RawMessage, error) {
	return func(ctx context.Context, m *manifest.Manifest, up *registry.Upload) (json.RawMessage, error) {
		var c Checks
		if n.cfg.RequireSignature {
			id, err := sign.Verify(up.Signature, n.cfg.TrustedKeys, up.Manifest, up.Files)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", registry.ErrBadDeploy, err)
			}
			c.SignedBy = id
		}
		if err := caps.ensureBuckets(ctx, m); err != nil {
			return nil, err
		}
		return json.Marshal(c)
	}
}
