package mqtt

// ClientTLS exposes clientTLS to the external tests.
var ClientTLS = clientTLS
