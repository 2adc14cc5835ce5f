namespace MLNet.Quantization.Calibration;

/// <summary>Symmetric int8 weight and int32 bias quantization: pure functions of the float values and the number format.</summary>
internal static class WeightQuantizer
{
    /// <summary>
    /// Quantizes <paramref name="values"/> to int8 with zero point 0 in <paramref name="format"/>: one scale per channel
    /// along <paramref name="channelAxis"/> when <paramref name="perChannel"/>, else one for the tensor; or, when
    /// <paramref name="threshold"/> is given (a range chosen by the user), one scale from it.
    /// </summary>
    /// <remarks>
    /// The channels along <paramref name="channelAxis"/> are the output channels: each one's weights meet the same
    /// activations in one reduction, so the pair bound of <paramref name="format"/> holds per channel even when the
    /// scale is shared. Activations are uint8 (a ≥ 0), so a pair a₁q₁ + a₂q₂ can leave int16 only when q₁ and q₂ have
    /// the same sign: with opposite signs |a₁q₁ + a₂q₂| ≤ 255 × 127. The bound therefore applies to each sign apart.
    /// For a channel with largest magnitude a, largest same-sign pair of magnitudes p (clipped to the threshold, if
    /// any), qmax = Q and pair limit L (∞ when unset), the smallest admissible scale is
    /// <list type="bullet">
    /// <item><see cref="WeightScaleMethod.Max"/>: s = max(a / Q, p / L);</item>
    /// <item><see cref="WeightScaleMethod.PowerOfTwo"/>: s = 2^ceil(log2 max(a / (Q + 1), p / L)) (TVM's power2 for Q = 127);</item>
    /// <item>a threshold T: s = max(T / Q, p / L).</item>
    /// </list>
    /// A shared scale is the largest channel scale. Then q = clamp(round_half_even(clip(w, ±T) / s), −Q, Q), and with
    /// <paramref name="rounding"/> <see cref="WeightRounding.Balanced"/> some q round the other way (see <c>Balance</c>). Rounding
    /// can lift a pair's p / s ≤ L to L + 1 (each term by at most ½); the larger |q| of such a pair then steps one
    /// towards zero, so that the bound holds exactly. A channel of zeros gets s = 1.
    /// </remarks>
    public static QuantizedWeight Quantize(string tensor, long[] dims, float[] values, int? channelAxis, bool perChannel,
        WeightScaleMethod method, WeightFormat format, float? threshold = null, WeightRounding rounding = WeightRounding.Nearest)
    {
        var channels = new Channels(dims, channelAxis);
        float limit = threshold ?? float.PositiveInfinity;
        var (top, second, _) = TopTwo(values, limit, channels);
        var required = new float[channels.Count];
        for (int c = 0; c < channels.Count; c++)
            required[c] = RequiredScale(Math.Max(top[2 * c], top[2 * c + 1]),
                Math.Max(top[2 * c] + second[2 * c], top[2 * c + 1] + second[2 * c + 1]), method, format, threshold);

        bool separate = perChannel && threshold is null && channels.Axis is not null;
        float shared = required.DefaultIfEmpty(0).Max();
        var scales = separate ? required.Select(s => s > 0 ? s : 1f).ToArray() : new[] { shared > 0 ? shared : 1f };
        var q = new sbyte[values.Length];
        var walk = separate ? channels.Walk() : new Channels.Walker(1, 1);
        for (int i = 0; i < values.Length; i++, walk.Next())
        {
            float scale = scales[walk.Channel];
            float w = Math.Clamp(values[i], -limit, limit);
            q[i] = (sbyte)Math.Clamp(Math.Round(w / scale, MidpointRounding.ToEven), -format.QMax, format.QMax);
        }
        if (format.PairLimit is { } pairLimit)
            EnforcePairLimit(q, channels, pairLimit);
        if (rounding == WeightRounding.Balanced && IsConvolution(dims, channels.Axis))
            Balance(values, q, scales, dims, channels, separate, format.QMax, format.PairLimit, limit);
        return new QuantizedWeight(tensor, dims, q, scales, separate ? channels.Axis : null);
    }

    /// <summary>
    /// Whether a weight is a convolution's, [Cout, Cin/group, k…] with the output channels first: the weights that
    /// <see cref="WeightRounding.Balanced"/> balances.
    /// </summary>
    public static bool IsConvolution(long[] dims, int? channelAxis) => channelAxis == 0 && dims.Length >= 3;

    /// <summary>
    /// <see cref="WeightRounding.Balanced"/>: flips the rounding of some weights of each output channel so that the
    /// rounding errors of each kernel, then of the channel, sum to within ½ step where the weights allow it.
    /// </summary>
    /// <remarks>
    /// With x = clip(w)/s and e = q − x (|e| ≤ ½ after nearest rounding), a channel's output error on an input patch a is
    /// s·Σᵢ eᵢaᵢ = s·(ā·Σᵢ eᵢ + Σₖ (āₖ − ā)·Eₖ + Σᵢ eᵢ(aᵢ − ā_k(i))), with Eₖ the error sum of kernel k (a Conv's weights
    /// over one input channel's window) and ā, āₖ the patch's and the window's means. Inputs of a window are alike, so
    /// the first two terms carry most of the error, and with independent rounding they grow as √n. SQuant (Guo et al.,
    /// ICLR 2022, its diagonal-Hessian approximation) bounds them:
    /// <list type="number">
    /// <item>per kernel ([Cout, Cin/g, k…]: the k… elements of one input channel), while |Eₖ| &gt; ½ the weight whose
    /// error leans most the same way rounds the other way (e → e ∓ 1);</item>
    /// <item>per channel, while |Σ e| &gt; ½, one more flip, in the kernel whose Eₖ leans most the same way.</item>
    /// </list>
    /// A flip never touches an exact weight (e = 0), and a flip away from zero never passes ±qmax, nor the pair bound
    /// with the channel's largest weight of its sign (the rounding is balanced after the pair bound is enforced, and
    /// keeps it). Each q stays within one step of x. Ties in the choice go to the lower index, so the result is a pure
    /// function of the values.
    /// </remarks>
    private static void Balance(float[] values, sbyte[] q, float[] scales, long[] dims, Channels channels, bool separate, int qmax,
        int? pairLimit, float limit)
    {
        // A convolution's output channel c is the contiguous block [c·length, (c + 1)·length), its kernels runs of `kernel`.
        int kernel = (int)dims.Skip(2).Aggregate(1L, (a, d) => a * d);
        int length = values.Length / channels.Count, kernels = length / kernel, start = 0;
        var error = new double[length];
        var kernelSums = new double[kernels];
        // The channel's largest magnitude of each sign (0: positive, 1: negative), never lowered while it is balanced:
        // a weight may grow only while it and that largest one stay within the pair bound.
        var largest = new int[2];
        for (int c = 0; c < channels.Count; c++, start += length)
        {
            float scale = scales[separate ? c : 0];
            largest[0] = largest[1] = 0;
            for (int j = 0; j < length; j++)
            {
                error[j] = q[start + j] - Math.Clamp(values[start + j], -limit, limit) / (double)scale;
                int sign = q[start + j] < 0 ? 1 : 0;
                largest[sign] = Math.Max(largest[sign], Math.Abs((int)q[start + j]));
            }
            for (int k = 0; k < kernels; k++)
            {
                int from = k * kernel, to = from + kernel;
                double sum = 0;
                for (int j = from; j < to; j++) sum += error[j];
                if (kernel > 1)
                    while (Math.Abs(sum) > 0.5 && Flip(from, to, sum) is { } flipped) sum += flipped;
                kernelSums[k] = sum;
            }
            double total = 0;
            for (int k = 0; k < kernels; k++) total += kernelSums[k];
            for (int guard = 0; guard < length && Math.Abs(total) > 0.5; guard++)
            {
                // The kernel whose sum leans most the way the channel's does gives one flip (the lowest index on a tie).
                int best = -1;
                double lean = double.NegativeInfinity;
                for (int k = 0; k < kernels; k++)
                {
                    double l = Math.Sign(total) * kernelSums[k];
                    if (l > lean && Leaning(k * kernel, k * kernel + kernel, total)) (best, lean) = (k, l);
                }
                if (best < 0) break;
                double change = Flip(best * kernel, best * kernel + kernel, total)!.Value;
                kernelSums[best] += change;
                total += change;
            }
        }

        // A weight in [from, to) that can round the other way against `sum`'s sign.
        bool Leaning(int from, int to, double sum)
        {
            for (int j = from; j < to; j++)
                if (CanFlip(j, sum)) return true;
            return false;
        }

        // Against a positive sum the weight steps down, against a negative one up; stepping away from zero it must stay
        // within ±qmax and, with the largest weight of its sign, within the pair bound.
        bool CanFlip(int j, double sum)
        {
            if (Math.Sign(error[j]) != Math.Sign(sum)) return false;
            int now = q[start + j], next = now - Math.Sign(sum);
            if (Math.Abs(next) <= Math.Abs(now)) return true;
            int sign = next < 0 ? 1 : 0;
            return Math.Abs(next) <= qmax && (pairLimit is not { } l || Math.Abs(next) + largest[sign] <= l);
        }

        // Flips the weight in [from, to) whose error leans most the way of `sum`; returns the change of the error sum.
        double? Flip(int from, int to, double sum)
        {
            int pick = -1;
            for (int j = from; j < to; j++)
                if (CanFlip(j, sum) && (pick < 0 || Math.Abs(error[j]) > Math.Abs(error[pick]))) pick = j;
            if (pick < 0) return null;
            int step = -Math.Sign(sum);
            int next = q[start + pick] + step;
            q[start + pick] = (sbyte)next;
            error[pick] += step;
            largest[next < 0 ? 1 : 0] = Math.Max(largest[next < 0 ? 1 : 0], Math.Abs(next));
            return step;
        }
    }

    private static float RequiredScale(float largest, float pair, WeightScaleMethod method, WeightFormat format, float? threshold)
    {
        float pairScale = format.PairLimit is { } l ? pair / l : 0;
        if (threshold is { } t) return t > 0 ? Math.Max(t / format.QMax, pairScale) : 0;
        if (largest == 0) return 0;
        return method == WeightScaleMethod.PowerOfTwo
            ? MathF.Pow(2, MathF.Ceiling(MathF.Log2(Math.Max(largest / (format.QMax + 1), pairScale))))
            : Math.Max(largest / format.QMax, pairScale);
    }

    // Rounding may put a same-sign pair one above the limit: its larger magnitude steps towards zero.
    private static void EnforcePairLimit(sbyte[] q, Channels channels, int limit)
    {
        var (first, second, at) = TopTwo(q, channels);
        for (int g = 0; g < first.Length; g++)
            if (first[g] + second[g] > limit)
                q[at[g]] = (sbyte)(Math.Sign(q[at[g]]) * Math.Max(0, limit - (int)second[g]));
    }

    /// <summary>
    /// The largest sum of two same-sign weight magnitudes within one output channel along <paramref name="channelAxis"/>
    /// (the whole tensor when null): at most 128 means that no pair of uint8 × int8 products can leave int16.
    /// </summary>
    public static int LargestPairSum(sbyte[] q, long[] dims, int? channelAxis)
    {
        var (first, second, _) = TopTwo(q, new Channels(dims, channelAxis));
        return (int)first.Zip(second, (a, b) => a + b).DefaultIfEmpty(0).Max();
    }

    // Per channel and sign (group 2c for positive elements, 2c + 1 for negative ones): the two largest magnitudes and
    // where the largest is. Magnitudes of int8 values are exact in float.
    private static (float[] First, float[] Second, int[] At) TopTwo(sbyte[] q, Channels channels)
    {
        var (first, second, at) = (new float[2 * channels.Count], new float[2 * channels.Count], new int[2 * channels.Count]);
        var walk = channels.Walk();
        for (int i = 0; i < q.Length; i++, walk.Next())
            Offer(first, second, at, 2 * walk.Channel + (q[i] < 0 ? 1 : 0), Math.Abs((int)q[i]), i);
        return (first, second, at);
    }

    // The same for float weights, their magnitudes clipped to `limit`.
    private static (float[] First, float[] Second, int[] At) TopTwo(float[] values, float limit, Channels channels)
    {
        var (first, second, at) = (new float[2 * channels.Count], new float[2 * channels.Count], new int[2 * channels.Count]);
        var walk = channels.Walk();
        for (int i = 0; i < values.Length; i++, walk.Next())
            Offer(first, second, at, 2 * walk.Channel + (values[i] < 0 ? 1 : 0), Math.Min(Math.Abs(values[i]), limit), i);
        return (first, second, at);
    }

    private static void Offer(float[] first, float[] second, int[] at, int g, float v, int i)
    {
        if (v > first[g]) { second[g] = first[g]; first[g] = v; at[g] = i; }
        else if (v > second[g]) second[g] = v;
    }

    // The output channels of a weight: slices along an axis, or the whole tensor when the axis is null or out of range.
    private readonly struct Channels
    {
        private readonly long _inner;

        public Channels(long[] dims, int? axis)
        {
            Axis = axis is { } a && a >= 0 && a < dims.Length ? a : null;
            Count = Axis is { } x ? (int)dims[x] : 1;
            _inner = 1;
            if (Axis is { } y)
                for (int d = y + 1; d < dims.Length; d++) _inner *= dims[d];
            if (Count == 0) Count = 1;
        }

        public int? Axis { get; }

        public int Count { get; }

        /// <summary>The channel of each element in turn, from the first: no division per element.</summary>
        public Walker Walk() => new(Count, _inner);

        public struct Walker
        {
            private readonly int _count;
            private readonly long _inner;
            private long _position;

            public Walker(int count, long inner) => (_count, _inner, _position, Channel) = (count, inner, 0, 0);

            public int Channel { get; private set; }

            public void Next()
            {
                if (++_position < _inner) return;
                _position = 0;
                if (++Channel == _count) Channel = 0;
            }
        }
    }

    /// <summary>
    /// Why a bias cannot be int32 with scale = input scale × weight scale, or null when it can: a scale that underflows
    /// float, or a value beyond ±2^31 steps (outlier biases appear after BatchNormalization folding).
    /// </summary>
    public static string? BiasProblem(float[] values, float inputScale, float[] weightScales)
    {
        for (int i = 0; i < values.Length; i++)
        {
            float scale = inputScale * weightScales[weightScales.Length == 1 ? 0 : i];
            if (!(scale >= float.Epsilon * 1e6f))
                return $"bias scale {inputScale:G6} × {weightScales[weightScales.Length == 1 ? 0 : i]:G6} underflows float at element {i}";
            if (Math.Abs(values[i] / (double)scale) > int.MaxValue)
                return $"element {i} ({values[i]:G6}) needs {values[i] / (double)scale:G6} steps of {scale:G6}, beyond int32";
        }
        return null;
    }

    /// <summary>
    /// Quantizes a bias to int32 with scale[c] = inputScale × weightScale[c], computed in float exactly as ONNX Runtime
    /// expects; values beyond the int32 range are clamped.
    /// </summary>
    public static QuantizedBias QuantizeBias(string tensor, long[] dims, float[] values, float inputScale, float[] weightScales)
    {
        var scales = weightScales.Select(s => inputScale * s).ToArray();
        var q = new int[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            double v = Math.Round(values[i] / (double)scales[scales.Length == 1 ? 0 : i], MidpointRounding.ToEven);
            q[i] = (int)Math.Clamp(v, int.MinValue, int.MaxValue);
        }
        return new QuantizedBias(tensor, dims, q, scales);
    }
}
