module github.com/sigil-dna/keysync/reload

go 1.26.8

require (
	github.com/fsnotify/fsnotify v1.10.1
	github.com/sigil-dna/keysync/keyring v0.0.0-00010101000000-000000000000
)

require golang.org/x/sys v0.13.0 // indirect

replace github.com/sigil-dna/keysync/keyring => ../keyring
