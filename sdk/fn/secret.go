package fn

// Secret returns the value of the secret called name. The manifest must name
// it (permissions.secrets), or Secret fails with ErrDenied; a named secret
// that was never set fails with ErrNotFound. The host scrubs secret values
// from the function's log, but a value the function writes elsewhere, such
// as into a response, is the function's to guard.
func Secret(name string) (string, error) { return secret(nil, name) }

func secret(host caller, name string) (string, error) {
	reply, err := host.call(opSecretGet, appendString(nil, name))
	if err != nil {
		return "", err
	}
	v, err := decodeString(reply)
	if err != nil {
		return "", malformed(opSecretGet, err)
	}
	return v, nil
}
