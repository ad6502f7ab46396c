// Package adaptertest holds test helpers that the adapters' own tests share.
package adaptertest
