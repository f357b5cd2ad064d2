namespace Sweeper.Core.Trials;

/// <summary>
/// The store could not be opened: the message says where and why in one line (a wrong password, a missing database,
/// nothing listening, no answer in time, a file that is not a store...), with what to do about it.
/// </summary>
public sealed class StoreOpenException(string message, Exception? inner = null) : Exception(message, inner);
