using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;

namespace MLNet.Quantization.Calibration;

/// <summary>
/// Turns one column of an IDataView cursor into the ONNX Runtime tensor of one model input, row by row: numbers of
/// every width ML.NET's OnnxTransformer feeds (float, double, signed and unsigned integers of 8 to 64 bits) and
/// booleans as they are, and ML.NET's text (<c>ReadOnlyMemory&lt;char&gt;</c>) as a string tensor, as ML.NET's
/// OnnxTransformer feeds it (a model exported from an ML.NET pipeline takes its label column so).
/// </summary>
internal abstract class InputFeed
{
    protected InputFeed(string name, int[] dims)
    {
        Name = name;
        Dims = dims;
    }

    public string Name { get; }

    protected int[] Dims { get; }

    /// <summary>
    /// Reads the current row into a new tensor; the caller disposes it. The tensor lies over one of the feed's buffers,
    /// which the read after the next <c>slots - 1</c> reads (see <see cref="Create"/>) fills again: so many rows' tensors
    /// can be in use at once.
    /// </summary>
    public abstract OrtValue Read(long row);

    // The input's shape for a row of <paramref name="length"/> values: its dynamic dimension filled in.
    protected long[] Shape(int length, long row)
    {
        var shape = Dims.Select(d => (long)d).ToArray();
        // One row is one batch item: a dynamic leading (batch) dimension is 1 when other dimensions are dynamic too.
        if (shape.Length > 1 && shape[0] <= 0 && shape.Skip(1).Any(d => d <= 0)) shape[0] = 1;
        int dynamic = shape.Count(d => d <= 0);
        long known = shape.Where(d => d > 0).Aggregate(1L, (a, d) => a * d);
        if (dynamic == 0 && known == length) return shape;
        if (dynamic == 1 && known > 0 && length % known == 0)
        {
            shape[Array.FindIndex(shape, d => d <= 0)] = length / known;
            return shape;
        }
        throw new ArgumentException(
            $"Row {row} of column '{Name}' has {length} values, which do not fill model input '{Name}' of shape " +
            $"[{string.Join(",", Dims)}]. Give its shape in ShapeDictionary.");
    }

    /// <summary>
    /// Checks the column against the model input and binds a getter on <paramref name="cursor"/>; the rows are read
    /// into <paramref name="slots"/> buffers in turn.
    /// </summary>
    public static InputFeed Create(DataViewRow cursor, DataViewSchema.Column column, NodeMetadata input, int[] dims, int slots = 1)
    {
        var itemType = column.Type is VectorDataViewType vector ? vector.ItemType.RawType : column.Type.RawType;
        bool text = itemType == typeof(ReadOnlyMemory<char>) && input.ElementType == typeof(string);
        if (itemType != input.ElementType && !text)
            throw new ArgumentException(
                $"Column '{column.Name}' holds {itemType.Name} values, but model input '{column.Name}' needs {input.ElementType.Name}.");
        int size = column.Type is VectorDataViewType v ? v.Size : 1;
        long expected = dims.All(d => d > 0) ? dims.Aggregate(1L, (a, d) => a * d) : 0;
        if (size == 0 && expected > 0)
            throw new ArgumentException(
                $"Column '{column.Name}' is a vector of variable size, but model input '{column.Name}' has the fixed shape " +
                $"[{string.Join(",", dims)}] ({expected} values): give the column that known size (a [VectorType({expected})] " +
                "attribute or a SchemaDefinition), as ML.NET's OnnxTransformer needs to score it.");
        if (size > 0 && expected > 0 && size != expected)
            throw new ArgumentException(
                $"Column '{column.Name}' has {size} values per row, but model input '{column.Name}' of shape " +
                $"[{string.Join(",", dims)}] needs {expected}.");
        if (text) return new Text(cursor, column, dims);
        return itemType switch
        {
            _ when itemType == typeof(float) => new Typed<float>(cursor, column, dims, slots),
            _ when itemType == typeof(double) => new Typed<double>(cursor, column, dims, slots),
            _ when itemType == typeof(long) => new Typed<long>(cursor, column, dims, slots),
            _ when itemType == typeof(int) => new Typed<int>(cursor, column, dims, slots),
            _ when itemType == typeof(bool) => new Typed<bool>(cursor, column, dims, slots),
            _ when itemType == typeof(sbyte) => new Typed<sbyte>(cursor, column, dims, slots),
            _ when itemType == typeof(byte) => new Typed<byte>(cursor, column, dims, slots),
            _ when itemType == typeof(short) => new Typed<short>(cursor, column, dims, slots),
            _ when itemType == typeof(ushort) => new Typed<ushort>(cursor, column, dims, slots),
            _ when itemType == typeof(uint) => new Typed<uint>(cursor, column, dims, slots),
            _ when itemType == typeof(ulong) => new Typed<ulong>(cursor, column, dims, slots),
            _ => throw new ArgumentException($"Column '{column.Name}' has type {itemType.Name}, which model inputs cannot take."),
        };
    }

    private sealed class Typed<T> : InputFeed where T : unmanaged
    {
        private readonly ValueGetter<VBuffer<T>>? _vectorGetter;
        private readonly ValueGetter<T>? _scalarGetter;
        private VBuffer<T> _buffer;
        private readonly T[][] _slots;
        private long _reads;

        public Typed(DataViewRow cursor, DataViewSchema.Column column, int[] dims, int slots) : base(column.Name, dims)
        {
            _slots = Enumerable.Repeat(Array.Empty<T>(), Math.Max(1, slots)).ToArray();
            if (column.Type is VectorDataViewType)
                _vectorGetter = cursor.GetGetter<VBuffer<T>>(column);
            else
                _scalarGetter = cursor.GetGetter<T>(column);
        }

        public override OrtValue Read(long row)
        {
            int slot = (int)(_reads++ % _slots.Length);
            var dense = _slots[slot];
            if (_vectorGetter is not null)
            {
                _vectorGetter(ref _buffer);
                if (dense.Length != _buffer.Length) dense = new T[_buffer.Length];
                _buffer.CopyTo(dense);
            }
            else
            {
                T value = default;
                _scalarGetter!(ref value);
                if (dense.Length != 1) dense = new T[1];
                dense[0] = value;
            }
            _slots[slot] = dense;
            return OrtValue.CreateTensorValueFromMemory(dense, Shape(dense.Length, row));
        }
    }

    // Text, one string per value. ONNX Runtime copies strings into its own tensor, so no buffer is kept between rows.
    private sealed class Text : InputFeed
    {
        private readonly ValueGetter<VBuffer<ReadOnlyMemory<char>>>? _vectorGetter;
        private readonly ValueGetter<ReadOnlyMemory<char>>? _scalarGetter;
        private VBuffer<ReadOnlyMemory<char>> _buffer;

        public Text(DataViewRow cursor, DataViewSchema.Column column, int[] dims) : base(column.Name, dims)
        {
            if (column.Type is VectorDataViewType)
                _vectorGetter = cursor.GetGetter<VBuffer<ReadOnlyMemory<char>>>(column);
            else
                _scalarGetter = cursor.GetGetter<ReadOnlyMemory<char>>(column);
        }

        public override OrtValue Read(long row)
        {
            ReadOnlyMemory<char>[] values;
            if (_vectorGetter is not null)
            {
                _vectorGetter(ref _buffer);
                values = _buffer.DenseValues().ToArray();
            }
            else
            {
                ReadOnlyMemory<char> value = default;
                _scalarGetter!(ref value);
                values = new[] { value };
            }
            var tensor = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, Shape(values.Length, row));
            for (int i = 0; i < values.Length; i++) tensor.StringTensorSetElementAt(values[i].Span, i);
            return tensor;
        }
    }
}
