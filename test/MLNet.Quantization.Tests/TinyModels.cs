using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Tests;

/// <summary>Builds small ONNX models in code, and data for them.</summary>
internal sealed class TinyModel
{
    private readonly ModelProto _model;
    private readonly Random _random;

    public TinyModel(long opset = 13, int seed = 7)
    {
        _random = new Random(seed);
        _model = new ModelProto { IrVersion = opset >= 13 ? 7 : 3, ProducerName = "tests", Graph = new GraphProto { Name = "tiny" } };
        _model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
    }

    public GraphProto Graph => _model.Graph;

    public TinyModel Input(string name, params long[] dims) { Graph.Input.Add(Value(name, dims)); return this; }

    public TinyModel Output(string name, params long[] dims) { Graph.Output.Add(Value(name, dims)); return this; }

    /// <summary>An input of element type <paramref name="elementType"/>; a dimension of −1 becomes a named, dynamic one.</summary>
    public TinyModel TypedInput(string name, int elementType, params long[] dims)
    {
        var value = Value(name, dims);
        value.Type.TensorType.ElemType = elementType;
        for (int i = 0; i < dims.Length; i++)
            if (dims[i] < 0) value.Type.TensorType.Shape.Dim[i] = new TensorShapeProto.Types.Dimension { DimParam = $"{name}_d{i}" };
        Graph.Input.Add(value);
        return this;
    }

    /// <summary>An output whose dimensions of −1 are dynamic.</summary>
    public TinyModel DynamicOutput(string name, params long[] dims) => TypedOutput(name, Tensors.Float, dims);

    public TinyModel TypedOutput(string name, int elementType, params long[] dims)
    {
        var value = Value(name, dims);
        value.Type.TensorType.ElemType = elementType;
        for (int i = 0; i < dims.Length; i++)
            if (dims[i] < 0) value.Type.TensorType.Shape.Dim[i] = new TensorShapeProto.Types.Dimension { DimParam = $"{name}_d{i}" };
        Graph.Output.Add(value);
        return this;
    }

    public TinyModel Node(NodeProto node) { Graph.Node.Add(node); return this; }

    public static ValueInfoProto FloatValue(string name, params long[] dims) => Value(name, dims);

    /// <summary>A value that is a sequence of float tensors (ONNX's sequence type, which ML.NET has no column to feed from).</summary>
    public static ValueInfoProto FloatSequence(string name) => new()
    {
        Name = name,
        Type = new TypeProto { SequenceType = new TypeProto.Types.Sequence { ElemType = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = Tensors.Float } } } },
    };

    /// <summary>Adds a float initializer with values drawn uniformly from [−scale, scale] (plus <paramref name="offset"/>).</summary>
    public TinyModel Weight(string name, long[] dims, float scale = 0.5f, float offset = 0)
    {
        var values = new float[dims.Aggregate(1L, (a, d) => a * d)];
        for (int i = 0; i < values.Length; i++) values[i] = offset + scale * (float)(_random.NextDouble() * 2 - 1);
        Graph.Initializer.Add(Tensors.FromFloats(name, dims, values));
        return this;
    }

    public TinyModel Constant(string name, long[] dims, float[] values)
    {
        Graph.Initializer.Add(Tensors.FromFloats(name, dims, values));
        return this;
    }

    public TinyModel Node(string op, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = OnnxGraph.MakeNode(op, $"{op}_{Graph.Node.Count}", inputs, outputs);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        return this;
    }

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    public static AttributeProto Int(string name, long value) => OnnxGraph.IntAttribute(name, value);

    public static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public string Save(string directory, string name = "tiny.onnx")
    {
        var path = Path.Combine(directory, name);
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(_model));
        return path;
    }

    private static ValueInfoProto Value(string name, long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = Tensors.Float, Shape = shape } },
        };
    }
}

/// <summary>Float vector columns for tiny models.</summary>
internal static class TinyData
{
    /// <summary>Rows of normally distributed values with mean <paramref name="mean"/>.</summary>
    public static float[][] Normal(int rows, int size, int seed = 11, float mean = 0, float std = 1)
    {
        var random = new Random(seed);
        float Next()
        {
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            return mean + std * (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return Enumerable.Range(0, rows).Select(_ => Enumerable.Range(0, size).Select(_ => Next()).ToArray()).ToArray();
    }

    /// <summary>An IDataView with one float vector column X of <paramref name="size"/> values.</summary>
    public static IDataView X(MLContext mlContext, float[][] rows, int size)
    {
        var definition = SchemaDefinition.Create(typeof(XRow));
        definition["X"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
        return mlContext.Data.LoadFromEnumerable(rows.Select(r => new XRow { X = r }), definition);
    }

    /// <summary>An IDataView with two float vector columns X and X2 of <paramref name="size"/> values.</summary>
    public static IDataView XX2(MLContext mlContext, float[][] x, float[][] x2, int size)
    {
        var definition = SchemaDefinition.Create(typeof(XX2Row));
        definition["X"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
        definition["X2"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
        return mlContext.Data.LoadFromEnumerable(x.Zip(x2, (a, b) => new XX2Row { X = a, X2 = b }), definition);
    }

    /// <summary>Reads float vector column <paramref name="name"/> of every row.</summary>
    public static float[][] Column(IDataView data, string name) => data.GetColumn<float[]>(name).ToArray();

    public static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
        return dot / Math.Sqrt(na * nb);
    }

    public static float MaxAbsDifference(float[][] a, float[][] b) =>
        a.Zip(b, (x, y) => x.Zip(y, (u, v) => Math.Abs(u - v)).Max()).Max();
}

public sealed class XRow
{
    public float[] X { get; set; } = Array.Empty<float>();
}

public sealed class XX2Row
{
    public float[] X { get; set; } = Array.Empty<float>();

    public float[] X2 { get; set; } = Array.Empty<float>();
}
