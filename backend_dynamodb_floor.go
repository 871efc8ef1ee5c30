//go:build dynamodb

package mcptasks

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mcptasks/mcptasks/internal/rawfloor"
)

// Interface guards
var (
	_ rawfloor.Floorer      = (*dynamoBackend)(nil)
	_ rawfloor.BatchFloorer = (*dynamoBackend)(nil)
)

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

// RawBatchFloor: n items FLOOR#KEY / RAW#i of size bytes, all replaced by
// BatchWriteItem, 25 puts a request (its limit), one request after
// another, unprocessed items sent again: what a batch of n updates costs
// without conditions, counters, a transaction or the runner index. They
// carry a TTL of ten minutes.
func (b *dynamoBackend) RawBatchFloor(ctx context.Context, key string, n, size int) (func(context.Context) error, func(context.Context) error, error) {
	pk := ddbS("FLOOR#" + key)
	data := &types.AttributeValueMemberB{Value: bytes.Repeat([]byte("x"), size)}
	expires := ddbN(time.Now().Add(10 * time.Minute).Unix())
	puts, deletes := make([]types.WriteRequest, n), make([]types.WriteRequest, n)
	for i := range n {
		k := map[string]types.AttributeValue{ddbPK: pk, ddbSK: ddbS("RAW#" + strconv.Itoa(i))}
		puts[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			ddbPK: pk, ddbSK: k[ddbSK], ddbData: data, ddbExpiresAt: expires,
		}}}
		deletes[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k}}
	}
	write := func(ctx context.Context) error { return b.batchWrite(ctx, puts) }
	if err := write(ctx); err != nil {
		return nil, nil, ddbErr(ctx, "floor", err)
	}
	cleanup := func(ctx context.Context) error { return b.batchWrite(ctx, deletes) }
	return write, cleanup, nil
}

// batchWrite sends reqs with BatchWriteItem, 25 a request, one request
// after another, and sends unprocessed items again at once.
func (b *dynamoBackend) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	for len(reqs) > 0 {
		chunk := reqs[:min(len(reqs), 25)]
		reqs = reqs[len(chunk):]
		for req := map[string][]types.WriteRequest{b.table: chunk}; len(req) > 0; {
			out, err := b.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: req})
			if err != nil {
				return err
			}
			req = out.UnprocessedItems
		}
	}
	return nil
}
