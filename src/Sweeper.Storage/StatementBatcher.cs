using System.Threading.Channels;
using Npgsql;

namespace Sweeper.Storage;

/// <summary>
/// Group commit for the PostgreSQL store's hot path. The training slots of a silo each write one statement per trial
/// event (claim, epoch report, finish), each its own transaction; on a busy silo several are in flight at once. This
/// sends the statements that arrive while the previous round trip is under way together, as one batch: one round trip,
/// one transaction, one commit (so one WAL flush for all of them). Each statement is self-contained (its fence is in
/// its own WHERE clause), so sharing a transaction changes no outcome: a fenced-out statement changes nothing and says
/// so in its own result. When a batch fails as a whole (a lost connection, a deadlock, one statement's error aborting
/// the others), every caller hears <see cref="BatchFailedException"/> and runs its statement alone, with the store's
/// usual retries, which tell an answer lost after the commit from a write that never happened.
/// </summary>
internal sealed class StatementBatcher : IAsyncDisposable
{
    private readonly NpgsqlDataSource _source;
    private readonly Func<string, (string Name, object? Value)[], NpgsqlBatchCommand> _command;
    private readonly int _maxBatch;
    private readonly Channel<Item> _queue = Channel.CreateUnbounded<Item>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _loop;
    private long _batches;
    private long _statements;

    /// <param name="source">The pool batches take their connection from.</param>
    /// <param name="command">Builds one statement of a batch from its SQL and parameters (the store adds its own, e.g. the clock skew).</param>
    /// <param name="maxBatch">Statements per batch at the most.</param>
    public StatementBatcher(NpgsqlDataSource source, Func<string, (string Name, object? Value)[], NpgsqlBatchCommand> command, int maxBatch = 32)
    {
        _source = source;
        _command = command;
        _maxBatch = maxBatch;
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Batches sent so far, and the statements in them (their ratio is the mean batch size).</summary>
    public (long Batches, long Statements) Sent => (Interlocked.Read(ref _batches), Interlocked.Read(ref _statements));

    /// <summary>
    /// Runs <paramref name="sql"/> in the next batch and returns <paramref name="read"/>'s reading of its result set.
    /// Throws <see cref="BatchFailedException"/> when the batch failed as a whole: nothing of it is known to have been
    /// written, and the caller runs the statement alone.
    /// </summary>
    public Task<T> RunAsync<T>(string sql, (string Name, object? Value)[] parameters, Func<NpgsqlDataReader, Task<T>> read, CancellationToken cancellationToken)
    {
        var item = new Item<T>(sql, parameters, read);
        if (!_queue.Writer.TryWrite(item))
        {
            throw new BatchFailedException(new ObjectDisposedException(nameof(StatementBatcher)));
        }

        return item.Done.Task.WaitAsync(cancellationToken);
    }

    private async Task LoopAsync()
    {
        // One batch in flight at a time: the statements that arrive meanwhile make up the next one. (Two or four in
        // flight measured the same on the orchestration benchmark.)
        var batch = new List<Item>(_maxBatch);
        while (await _queue.Reader.WaitToReadAsync())
        {
            batch.Clear();
            while (batch.Count < _maxBatch && _queue.Reader.TryRead(out var item))
            {
                batch.Add(item);
            }

            await SendAsync(batch);
        }
    }

    private async Task SendAsync(List<Item> items)
    {
        try
        {
            await using var conn = await _source.OpenConnectionAsync();
            await using var batch = new NpgsqlBatch(conn);
            foreach (var item in items)
            {
                batch.BatchCommands.Add(_command(item.Sql, item.Parameters));
            }

            // A batch of several statements is one implicit transaction: each result is read, then all commit at once
            // when the reader is done. Results are handed out only after that commit.
            var results = new object?[items.Count];
            await using (var reader = await batch.ExecuteReaderAsync())
            {
                for (var i = 0; i < items.Count; i++)
                {
                    if (i > 0 && !await reader.NextResultAsync())
                    {
                        throw new InvalidOperationException($"a batch of {items.Count} statements returned {i} results.");
                    }

                    results[i] = await items[i].ReadAsync(reader);
                }
            }

            Interlocked.Increment(ref _batches);
            Interlocked.Add(ref _statements, items.Count);
            for (var i = 0; i < items.Count; i++)
            {
                items[i].Complete(results[i]);
            }
        }
        catch (Exception e)
        {
            foreach (var item in items)
            {
                item.Fail(new BatchFailedException(e));
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop;
    }

    private abstract class Item(string sql, (string Name, object? Value)[] parameters)
    {
        public string Sql { get; } = sql;

        public (string Name, object? Value)[] Parameters { get; } = parameters;

        public abstract Task<object?> ReadAsync(NpgsqlDataReader reader);

        public abstract void Complete(object? result);

        public abstract void Fail(Exception e);
    }

    private sealed class Item<T>(string sql, (string Name, object? Value)[] parameters, Func<NpgsqlDataReader, Task<T>> read) : Item(sql, parameters)
    {
        public TaskCompletionSource<T> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async Task<object?> ReadAsync(NpgsqlDataReader reader) => await read(reader);

        public override void Complete(object? result) => Done.TrySetResult((T)result!);

        public override void Fail(Exception e) => Done.TrySetException(e);
    }
}

/// <summary>A batch of statements failed as a whole; the statement is to be run alone.</summary>
internal sealed class BatchFailedException(Exception inner) : Exception("a batch of statements failed: " + inner.Message, inner);
