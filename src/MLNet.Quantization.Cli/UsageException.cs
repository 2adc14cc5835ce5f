namespace MLNet.Quantization.Cli;

/// <summary>Bad arguments or bad input: the tool exits with code 2 and prints the message as one line.</summary>
internal sealed class UsageException : Exception
{
    public UsageException(string message) : base(message)
    {
    }
}
