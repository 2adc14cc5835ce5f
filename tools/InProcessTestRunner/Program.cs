// Runs [TestMethod]s in-process, for QEMU user mode. Usage: InProcessTestRunner TESTS.dll FILTER... (Class.Method contains a filter);
// InProcessTestRunner TESTS.dll --list FILTER... prints the selected tests' Class.Method names instead of running them.
using System.Reflection;
using System.Runtime.Loader;

var dll = Path.GetFullPath(args[0]);
var alc = new TestContextAlc(dll);
var asm = alc.LoadFromAssemblyPath(dll);
Environment.CurrentDirectory = Path.GetDirectoryName(dll)!;
int passed = 0, failed = 0;
bool list = args.Length > 1 && args[1] == "--list";
var filters = args.Skip(list ? 2 : 1).ToArray();
static MethodInfo Marked(Type type, string attribute) =>
    type.GetMethods(BindingFlags.Public | BindingFlags.Static).FirstOrDefault(m => m.GetCustomAttributes().Any(a => a.GetType().Name == attribute));
foreach (var type in asm.GetTypes().Where(t => t.GetCustomAttributes().Any(a => a.GetType().Name == "TestClassAttribute")))
{
    var selected = type.GetMethods().Where(m => m.GetCustomAttributes().Any(a => a.GetType().Name is "TestMethodAttribute"))
        .Where(m => filters.Any(f => $"{type.Name}.{m.Name}".Contains(f))).ToList();
    if (selected.Count == 0) continue;
    if (list)
    {
        foreach (var m in selected) Console.WriteLine($"{type.Name}.{m.Name}");
        continue;
    }
    // [ClassInitialize] takes a TestContext, which these tests ignore; [ClassCleanup] runs after the class.
    var init = Marked(type, "ClassInitializeAttribute");
    init?.Invoke(null, init.GetParameters().Length == 0 ? null : new object[] { null });
    foreach (var m in selected)
    foreach (var data in Cases(m))
    {
        var name = $"{type.Name}.{m.Name}{(data is null ? "" : $"({string.Join(", ", data)})")}";
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var instance = m.IsStatic ? null : Activator.CreateInstance(type);
            m.Invoke(instance, data);
            passed++; Console.WriteLine($"PASS {name} ({clock.Elapsed.TotalSeconds:F0} s)");
        }
        catch (TargetInvocationException e)
        {
            failed++; Console.WriteLine($"FAIL {name}: {e.InnerException?.Message}");
        }
    }
    Marked(type, "ClassCleanupAttribute")?.Invoke(null, null);
}
if (!list) Console.WriteLine($"{passed} passed, {failed} failed");

// The argument lists of a test: none for a plain one, one per case of its [DataRow]s and [DynamicData] (every MSTest
// data source answers ITestDataSource.GetData).
static IEnumerable<object[]> Cases(MethodInfo m)
{
    if (m.GetParameters().Length == 0) return new object[][] { null };
    return m.GetCustomAttributes()
        .Select(a => (Attribute: a, GetData: a.GetType().GetInterface("ITestDataSource")?.GetMethod("GetData")))
        .Where(p => p.GetData is not null)
        .SelectMany(p => ((System.Collections.IEnumerable)p.GetData!.Invoke(p.Attribute, new object[] { m })!).Cast<object[]>())
        .ToList();
}

sealed class TestContextAlc : AssemblyLoadContext
{
    private readonly AssemblyDependencyResolver _resolver;
    public TestContextAlc(string path) : base("tests") => _resolver = new AssemblyDependencyResolver(path);
    protected override Assembly Load(AssemblyName name) => _resolver.ResolveAssemblyToPath(name) is { } p ? LoadFromAssemblyPath(p) : null;
    protected override IntPtr LoadUnmanagedDll(string name) => _resolver.ResolveUnmanagedDllToPath(name) is { } p ? LoadUnmanagedDllFromPath(p) : IntPtr.Zero;
}
