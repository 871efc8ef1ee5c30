package taskadmin

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"

	"github.com/mcptasks/mcptasks/internal/taskid"
)

// A task reference names one task of one owner in a URL path segment (and
// a cancel form): the task id, then either '.' and the owner in base64url,
// or, with Options.OwnerDigests, '~' and the owner sealed (AES-GCM under a
// key derived from Options.RefKey, the task id as associated data, the
// nonce derived from task id and owner, so a task always gets the same
// reference). Both forms are accepted whichever mode made them.

// maxRef bounds a reference, in bytes.
const maxRef = 4 << 10

var errBadRef = errors.New("not a task reference of this admin page")

type refCodec struct {
	seal     bool
	aead     cipher.AEAD
	nonceKey []byte
}

func newRefCodec(key []byte, seal bool) refCodec {
	encKey := hmacSum(key, []byte("mcptasks admin ref: encryption key"))
	block, err := aes.NewCipher(encKey)
	if err != nil {
		panic(err) // a 32-byte key is always an AES-256 key
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return refCodec{seal: seal, aead: aead, nonceKey: hmacSum(key, []byte("mcptasks admin ref: nonce key"))}
}

func hmacSum(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

func (c refCodec) encode(owner, taskID string) string {
	if !c.seal {
		return taskID + "." + base64.RawURLEncoding.EncodeToString([]byte(owner))
	}
	nonce := hmacSum(c.nonceKey, []byte(taskID+"\x00"+owner))[:c.aead.NonceSize()]
	sealed := c.aead.Seal(nonce, nonce, []byte(owner), []byte(taskID))
	return taskID + "~" + base64.RawURLEncoding.EncodeToString(sealed)
}

func (c refCodec) decode(ref string) (owner, taskID string, err error) {
	if len(ref) <= taskid.Len+1 || len(ref) > maxRef || !taskid.Valid(ref[:taskid.Len]) {
		return "", "", errBadRef
	}
	taskID = ref[:taskid.Len]
	b, err := base64.RawURLEncoding.Strict().DecodeString(ref[taskid.Len+1:])
	if err != nil {
		return "", "", errBadRef
	}
	switch ref[taskid.Len] {
	case '.':
		owner = string(b)
	case '~':
		n := c.aead.NonceSize()
		if len(b) < n {
			return "", "", errBadRef
		}
		plain, err := c.aead.Open(nil, b[:n], b[n:], []byte(taskID))
		if err != nil {
			return "", "", errBadRef
		}
		owner = string(plain)
	default:
		return "", "", errBadRef
	}
	if owner == "" {
		return "", "", errBadRef
	}
	return owner, taskID, nil
}
