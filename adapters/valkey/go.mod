module github.com/relock-go/relock/adapters/valkey

go 1.26.0

replace github.com/relock-go/relock => ../..

require (
	github.com/alicebob/miniredis/v2 v2.40.0
	github.com/relock-go/relock v0.0.0
	github.com/valkey-io/valkey-go v1.0.80
	go.uber.org/goleak v1.3.0
)

require (
	github.com/yuin/gopher-lua v1.1.1 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
