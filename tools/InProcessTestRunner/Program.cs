// Runs [TestMethod]s in-process, for QEMU user mode. Usage: InProcessTestRunner TESTS.dll FILTER... (Class.Method contains a filter).
using System.Reflection;
using System.Runtime.Loader;

var dll = Path.GetFullPath(args[0]);
var alc = new TestContextAlc(dll);
var asm = alc.LoadFromAssemblyPath(dll);
Environment.CurrentDirectory = Path.GetDirectoryName(dll)!;
int passed = 0, failed = 0;
foreach (var type in asm.GetTypes().Where(t => t.GetCustomAttributes().Any(a => a.GetType().Name == "TestClassAttribute")))
    foreach (var m in type.GetMethods().Where(m => m.GetCustomAttributes().Any(a => a.GetType().Name is "TestMethodAttribute")))
    {
        var name = $"{type.Name}.{m.Name}";
        if (!args.Skip(1).Any(f => name.Contains(f))) continue;
        if (m.GetParameters().Length > 0) { Console.WriteLine($"skip {name} (parameters)"); continue; }
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var instance = m.IsStatic ? null : Activator.CreateInstance(type);
            m.Invoke(instance, null);
            passed++; Console.WriteLine($"PASS {name} ({clock.Elapsed.TotalSeconds:F0} s)");
        }
        catch (TargetInvocationException e)
        {
            failed++; Console.WriteLine($"FAIL {name}: {e.InnerException?.Message}");
        }
    }
Console.WriteLine($"{passed} passed, {failed} failed");

sealed class TestContextAlc : AssemblyLoadContext
{
    private readonly AssemblyDependencyResolver _resolver;
    public TestContextAlc(string path) : base("tests") => _resolver = new AssemblyDependencyResolver(path);
    protected override Assembly Load(AssemblyName name) => _resolver.ResolveAssemblyToPath(name) is { } p ? LoadFromAssemblyPath(p) : null;
    protected override IntPtr LoadUnmanagedDll(string name) => _resolver.ResolveUnmanagedDllToPath(name) is { } p ? LoadUnmanagedDllFromPath(p) : IntPtr.Zero;
}
