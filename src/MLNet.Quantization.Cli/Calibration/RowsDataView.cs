using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Quantization.Cli.Calibration;

/// <summary>
/// An IDataView over rows made on demand (one array per column, of the column's item type), so that calibration streams its
/// rows from disk: each cursor reads the files again, and nothing is kept.
/// </summary>
internal sealed class RowsDataView : IDataView
{
    private readonly Func<IEnumerable<Array[]>> _rows;

    public RowsDataView(DataViewSchema schema, Func<IEnumerable<Array[]>> rows)
    {
        Schema = schema;
        _rows = rows;
    }

    public bool CanShuffle => false;

    public DataViewSchema Schema { get; }

    public long? GetRowCount() => null;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(Schema, _rows().GetEnumerator());

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly IEnumerator<Array[]> _rows;
        private Array[] _current = Array.Empty<Array>();
        private long _position = -1;

        public Cursor(DataViewSchema schema, IEnumerator<Array[]> rows)
        {
            Schema = schema;
            _rows = rows;
        }

        public override DataViewSchema Schema { get; }

        public override long Position => _position;

        public override long Batch => 0;

        public override bool MoveNext()
        {
            if (!_rows.MoveNext()) return false;
            _current = _rows.Current;
            _position++;
            return true;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => true;

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId value) => value = new DataViewRowId((ulong)_position, 0);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int index = column.Index;
            // A vector column of any item type: the row's array of that type, as it is.
            if (typeof(TValue).IsGenericType && typeof(TValue).GetGenericTypeDefinition() == typeof(VBuffer<>))
            {
                var item = typeof(TValue).GetGenericArguments()[0];
                var vector = typeof(Cursor).GetMethod(nameof(Vector), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!;
                return (ValueGetter<TValue>)vector.MakeGenericMethod(item).Invoke(this, new object[] { column })!;
            }
            throw new InvalidOperationException($"Column '{column.Name}' is read as {typeof(TValue).Name}, which this view does not hold: its columns are vectors.");
        }

        private ValueGetter<VBuffer<T>> Vector<T>(DataViewSchema.Column column) => (ref VBuffer<T> v) =>
        {
            var a = _current[column.Index] as T[]
                ?? throw new InvalidOperationException($"Column '{column.Name}' is read as {typeof(T).Name}, but this row holds {_current[column.Index].GetType().Name}.");
            v = new VBuffer<T>(a.Length, a);
        };

        protected override void Dispose(bool disposing)
        {
            if (disposing) _rows.Dispose();
            base.Dispose(disposing);
        }
    }
}
