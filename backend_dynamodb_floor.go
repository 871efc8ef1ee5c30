//go:build dynamodb

package mcptasks

import (
	"bytes"
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mcptasks/mcptasks/internal/rawfloor"
)

// Interface guards
var _ rawfloor.Floorer = (*dynamoBackend)(nil)

// RawFloor: an item FLOOR#KEY / RAW (no owner's key: those start with
// OWNER#) holding size bytes, read with a consistent GetItem, as Get does.
func (b *dynamoBackend) RawFloor(ctx context.Context, key string, size int) (func(context.Context) error, func(context.Context) error, error) {
	k := map[string]types.AttributeValue{ddbPK: ddbS("FLOOR#" + key), ddbSK: ddbS("RAW")}
	item := map[string]types.AttributeValue{
		ddbPK: k[ddbPK], ddbSK: k[ddbSK],
		ddbData:      &types.AttributeValueMemberB{Value: bytes.Repeat([]byte("x"), size)},
		ddbExpiresAt: ddbN(time.Now().Add(10 * time.Minute).Unix()),
	}
	if _, err := b.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(b.table), Item: item}); err != nil {
		return nil, nil, ddbErr(ctx, "floor", err)
	}
	read := func(ctx context.Context) error {
		_, err := b.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(b.table), Key: k, ConsistentRead: aws.Bool(true)})
		return err
	}
	cleanup := func(ctx context.Context) error {
		_, err := b.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(b.table), Key: k})
		return err
	}
	return read, cleanup, nil
}
