module github.com/sigil-dna/keysync/keyring

go 1.26.8
