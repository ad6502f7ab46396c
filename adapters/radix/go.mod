module github.com/relock-go/relock/adapters/radix

go 1.25.0

replace github.com/relock-go/relock => ../..

require (
	github.com/alicebob/miniredis/v2 v2.40.0
	github.com/mediocregopher/radix/v4 v4.1.4
	github.com/relock-go/relock v0.0.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/tilinna/clock v1.0.2 // indirect
	github.com/yuin/gopher-lua v1.1.1 // indirect
)
